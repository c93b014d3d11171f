"""Service configuration: one Settings class, read from the environment and `.env`.

Every variable carries the `{{ cookiecutter.package_name|upper }}_` prefix. The three infrastructure URLs also
accept the unprefixed names (`DATABASE_URL`, `DATABASE_REPLICA_URL`, `REDIS_URL`) that hosting
platforms set. With nothing set the service runs on embedded defaults: a SQLite file, no cache,
jobs in-process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# policy/rbac.yaml at the project root (src/<package>/settings.py -> ../../policy).
DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policy" / "rbac.yaml"
ENV_PREFIX = "{{ cookiecutter.package_name|upper }}_"
DEV_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 - refused outside dev/test  # nosec B105
MIN_SECRET_LENGTH = 32


def _env(name: str) -> AliasChoices:
    """Accept both the prefixed and the bare platform name of an infrastructure URL."""
    return AliasChoices(ENV_PREFIX + name, name)


def normalise_database_url(url: str) -> str:
    """Map the URLs people paste (postgres://, postgresql://, sqlite://) to async drivers."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Settings(BaseSettings):
    """All tunables of the service; see README "Configuration" for the full table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["dev", "test", "production"] = "dev"
    service_name: str = "{{ cookiecutter.project_slug }}"

    database_url: str = Field(
        default="sqlite+aiosqlite:///./{{ cookiecutter.package_name }}.db",
        validation_alias=_env("DATABASE_URL"),
    )
    database_replica_url: str | None = Field(
        default=None, validation_alias=_env("DATABASE_REPLICA_URL")
    )
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    # After a failed replica connection, reads go to the primary for this long before retrying.
    replica_retry_after_seconds: float = Field(default=5.0, ge=0)
    # After a client's write, its reads go to the primary for this long (read-your-writes).
    read_your_writes_seconds: float = Field(default=5.0, ge=0)

    secret_key: SecretStr = SecretStr(DEV_SECRET)
    jwt_issuer: str = "{{ cookiecutter.project_slug }}"
    jwt_audience: str = "{{ cookiecutter.project_slug }}-api"
    access_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # argon2id cost; RFC 9106's second recommended profile. Tests lower it to stay fast.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=64)
    password_min_length: int = Field(default=10, ge=8)

    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=100, ge=1)
    idempotency_retention_hours: int = Field(default=24, ge=1)

    rbac_policy_path: Path = DEFAULT_POLICY_PATH

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON everywhere except dev

    # --- feature flags (issue 8: flags.py) ---
    # A YAML file of flag overrides (`ai-summary: true`); Kubernetes mounts a ConfigMap here.
    flags_file: Path | None = None

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        return normalise_database_url(value) if value else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default must not exceed page_size_max")
        if self.environment == "production":
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"{ENV_PREFIX}SECRET_KEY is the development default or shorter than "
                    f"{MIN_SECRET_LENGTH} characters; production refuses to start with it. "
                    "Generate one with: "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
            if self.database_url.startswith("sqlite"):
                raise ValueError("production needs PostgreSQL: set DATABASE_URL")
        return self

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded SQLite database."""
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        """JSON logs unless explicitly disabled, or human-readable ones in dev by default."""
        return self.log_json if self.log_json is not None else self.environment != "dev"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
