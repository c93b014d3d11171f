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
# prompts/ at the project root: pinned AI prompt templates and their lock (jobs/ai/prompts.py).
DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
ENV_PREFIX = "{{ cookiecutter.package_name|upper }}_"
DEV_SECRET = "dev-only-insecure-secret-change-me"  # noqa: S105 - refused outside dev/test
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
        # A refusal must not print what it refused: the secret, or a DATABASE_URL's password.
        hide_input_in_errors=True,
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
    # HS256: tokens minted and checked with SECRET_KEY (dev, single service). RS256: tokens of an
    # identity provider, checked with its public key (PEM) or its JWKS URL; this service mints
    # RS256 tokens itself only when it is given the private key.
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_public_key: str | None = None
    jwt_private_key: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    # How long a read may trust a cached membership role (0 disables the cache).
    membership_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Login throttling ("N per period", see the `limits` package's notation).
    login_limit_per_account: str = "10 per 15 minutes"
    login_limit_per_address: str = "100 per 15 minutes"
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

    # --- Cache (Redis, see cache/): read-through for single objects behind a circuit breaker ---
    cache_enabled: bool = True  # only effective with REDIS_URL set
    cache_namespace: str = "{{ cookiecutter.project_slug }}"
    cache_project_ttl_seconds: int = Field(default=300, ge=1)
    cache_task_ttl_seconds: int = Field(default=120, ge=1)
    # Every cache call to Redis gives up after this long; a slow Redis only costs this much.
    # The clock also runs while the event loop is busy with other requests, so a busy process
    # would read its own lag as a Redis failure with a tighter bound (50 ms opened the breaker
    # at 16 concurrent requests in `make perf`).
    cache_timeout_seconds: float = Field(default=0.25, gt=0, le=5)
    # The breaker opens after this many failed Redis calls in a row within the window...
    cache_breaker_failures: int = Field(default=5, ge=1)
    cache_breaker_window_seconds: float = Field(default=10.0, gt=0)
    # ...and stretch over at least this long: one event-loop stall times out every call in
    # flight at once (Redis answered them); a dead Redis keeps failing. 0: N failures suffice.
    cache_breaker_min_span_seconds: float = Field(default=0.5, ge=0)
    # ...stays open this long, then lets one trial call decide whether to close.
    cache_breaker_cooldown_seconds: float = Field(default=5.0, gt=0)
    # How often each process applies invalidations recorded while Redis was unreachable.
    cache_backstop_interval_seconds: float = Field(default=1.0, gt=0)
    # Organization stats: counts up to this many rows are exact; above, planner estimates.
    stats_exact_count_limit: int = Field(default=1000, ge=0)
    # --- Observability: tracing, metrics exposition ---
    # Tracing is on by default: trace ids reach logs and responses even when nothing exports.
    tracing_enabled: bool = True
    # OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); unset: spans not exported.
    otlp_endpoint: str | None = Field(
        default=None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # /metrics: bearer token; None means open in dev/test and refused in production.
    metrics_token: SecretStr | None = None
    # Serve metrics on their own port instead of the app's /metrics (0 or unset: same app).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a scrape target listens on the pod's address
    # --- feature flags (issue 8: flags.py) ---
    # A YAML file of flag overrides (`ai-summary: true`); Kubernetes mounts a ConfigMap here.
    flags_file: Path | None = None

    # --- Background jobs (jobs/): retries, outbox relay, webhooks, exports, AI -------------
    # Every job gets this many tries; a retry waits base * 2^(try-1) (capped), with jitter.
    job_max_tries: int = Field(default=5, ge=1, le=100)
    job_retry_base_seconds: float = Field(default=2.0, ge=0)
    job_retry_max_seconds: float = Field(default=600.0, ge=0)
    # One attempt of a job is cancelled after this long (a retryable timeout); jobs may set less.
    job_timeout_seconds: float = Field(default=300.0, gt=0)
    jobs_queue_name: str = "{{ cookiecutter.package_name }}:jobs"
    # Jobs run at once per worker process (and by the in-process runner in embedded mode).
    worker_max_jobs: int = Field(default=10, ge=1)
    # The relay re-sends a dispatched outbox row whose job has not finished after this long
    # (a worker died, Redis lost its data): at-least-once delivery.
    outbox_relay_interval_seconds: float = Field(default=5.0, gt=0)
    outbox_redispatch_after_seconds: float = Field(default=900.0, gt=0)
    outbox_retention_hours: int = Field(default=168, ge=1)
    webhook_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    webhook_read_timeout_seconds: float = Field(default=10.0, gt=0)
    # Exports and uploaded imports are files in this directory (a shared volume in production).
    storage_dir: Path = Path("var/storage")
    export_chunk_rows: int = Field(default=1000, ge=1)
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # AI: "local" is deterministic and offline; "openai" is any OpenAI-compatible endpoint.
    ai_provider: Literal["local", "openai"] = "local"
    ai_base_url: str = "https://api.openai.com/v1"
    ai_api_key: SecretStr | None = None
    ai_timeout_seconds: float = Field(default=30.0, gt=0)
    prompts_dir: Path = DEFAULT_PROMPTS_DIR

    @field_validator("redis_url")
    @classmethod
    def _blank_redis_is_unset(cls, value: str | None) -> str | None:
        # REDIS_URL= (set but empty) means "no Redis": the embedded default, not a bad URL.
        return value or None

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        return normalise_database_url(value) if value else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> Self:
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default must not exceed page_size_max")
        if self.jwt_algorithm == "RS256" and not (self.jwt_public_key or self.jwt_jwks_url):
            raise ValueError("jwt_algorithm RS256 needs JWT_PUBLIC_KEY or JWT_JWKS_URL")
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
