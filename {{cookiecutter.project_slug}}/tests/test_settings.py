"""Settings validate themselves: production refuses the development secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.settings import DEV_SECRET, Settings


def test_production_refuses_the_dev_secret() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is the development default"):
        Settings(
            _env_file=None,
            environment="production",
            secret_key=DEV_SECRET,  # type: ignore[call-arg]
            database_url="postgresql://db/app",
        )


def test_production_refuses_a_short_secret_and_sqlite() -> None:
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(
            _env_file=None,
            environment="production",
            secret_key="short",  # type: ignore[call-arg]
            database_url="postgresql://db/app",
        )
    with pytest.raises(ValidationError, match="production needs PostgreSQL"):
        Settings(_env_file=None, environment="production", secret_key="x" * 40)  # type: ignore[call-arg]


def test_a_refusal_echoes_neither_the_secret_nor_the_database_url() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(
            _env_file=None,
            environment="production",
            secret_key="tiny-but-secret",  # type: ignore[call-arg]
            database_url="postgresql://admin:hunter2-db-password@db.internal/app",
        )
    message = str(refused.value)
    assert "shorter than 32" in message
    assert "tiny-but-secret" not in message
    assert "hunter2-db-password" not in message


def test_production_starts_with_a_real_secret() -> None:
    settings = Settings(
        _env_file=None,
        environment="production",
        secret_key="s" * 48,  # type: ignore[call-arg]
        database_url="postgres://u@db:5432/app",
    )
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/app"


def test_bare_platform_variable_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/app")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == "postgresql+asyncpg://u@db/app"
    assert settings.redis_url == "redis://cache:6379/0"


def test_embedded_defaults() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.is_sqlite
    assert settings.redis_url is None
