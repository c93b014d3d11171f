"""Every HTTP router of the jobs package, for create_app() to include."""

from __future__ import annotations

from fastapi import APIRouter

from {{ cookiecutter.package_name }}.jobs.ai.router import router as ai_router
from {{ cookiecutter.package_name }}.jobs.dlq_router import router as dlq_router
from {{ cookiecutter.package_name }}.jobs.transfers.router import router as transfers_router
from {{ cookiecutter.package_name }}.jobs.webhooks.router import router as webhooks_router

routers: list[APIRouter] = [webhooks_router, transfers_router, ai_router, dlq_router]
