"""The tables of the jobs package, gathered so that models.py (alembic, tests) sees them all."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.jobs.ai.summary import AiSummary
from {{ cookiecutter.package_name }}.jobs.dead_letters import DeadLetter
from {{ cookiecutter.package_name }}.jobs.outbox import OutboxMessage
from {{ cookiecutter.package_name }}.jobs.transfers.model import ExportJob, ImportJob
from {{ cookiecutter.package_name }}.jobs.webhooks.model import WebhookEndpoint

JOB_MODELS = (AiSummary, DeadLetter, ExportJob, ImportJob, OutboxMessage, WebhookEndpoint)
