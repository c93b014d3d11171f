"""Prometheus metrics of the service, declared in one place so names stay consistent."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DB_READS = Counter(
    "app_db_reads_total", "Read sessions opened, by the server that served them.", ["role"]
)
REPLICA_FALLBACKS = Counter(
    "app_db_replica_fallbacks_total", "Reads sent to the primary because the replica was down."
)
PERMISSION_DENIALS = Counter(
    "app_permission_denials_total", "Requests denied by the RBAC policy.", ["action", "role"]
)
IDEMPOTENT_REPLAYS = Counter(
    "app_idempotent_replays_total", "Write requests answered from a stored idempotent response."
)

# --- Background jobs (jobs/) ---------------------------------------------------------------
JOBS = Counter(
    "app_jobs_total",
    "Job attempts by job name and outcome (success, retry, dead_letter).",
    ["job", "outcome"],
)
JOB_RETRIES = Counter("app_job_retries_total", "Job attempts that will be retried.", ["job"])
DEAD_LETTERS = Counter("app_dead_letters_total", "Jobs moved to the dead-letter table.", ["job"])
DEAD_LETTER_DEPTH = Gauge(
    "app_dead_letters_depth", "Dead letters not yet replayed (refreshed by the outbox relay)."
)
OUTBOX_DISPATCHED = Counter(
    "app_outbox_dispatched_total", "Outbox rows handed to the queue (or the in-process runner)."
)
OUTBOX_DISPATCH_FAILURES = Counter(
    "app_outbox_dispatch_failures_total", "Relay passes stopped because the queue was down."
)
