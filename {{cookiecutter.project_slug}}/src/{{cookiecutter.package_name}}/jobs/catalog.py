"""Imports every module that registers jobs, so a worker or runner knows all of them."""

from __future__ import annotations

import importlib

JOB_MODULES: tuple[str, ...] = (
    "{{ cookiecutter.package_name }}.jobs.webhooks.jobs",
    "{{ cookiecutter.package_name }}.jobs.transfers.exports",
    "{{ cookiecutter.package_name }}.jobs.transfers.imports",
    "{{ cookiecutter.package_name }}.jobs.ai.summary",
)


def load_jobs() -> None:
    """Register every job of the service (idempotent: modules import once)."""
    for module in JOB_MODULES:
        importlib.import_module(module)
