"""Prometheus metrics of the service, declared in one place so names stay consistent."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DB_READS = Counter(
    "app_db_reads_total", "Read sessions that connected, by the server that served them.", ["role"]
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

# --- Cache (cache/store.py) and its circuit breaker ---
CACHE_REQUESTS = Counter(
    "app_cache_requests_total",
    "Cached reads by outcome: hit, miss, error (Redis failed), bypass (not asked).",
    ["resource", "result"],
)
CACHE_REDIS_CALLS = Counter(
    "app_cache_redis_calls_total", "Redis calls the cache attempted, by outcome.", ["outcome"]
)
CACHE_BREAKER_STATE = Gauge(
    "app_cache_breaker_state", "Cache circuit breaker: 0 closed, 1 half-open, 2 open."
)
CACHE_BREAKER_TRANSITIONS = Counter(
    "app_cache_breaker_transitions_total", "Cache breaker state changes, by new state.", ["to"]
)
CACHE_INVALIDATIONS = Counter(
    "app_cache_invalidations_total",
    "Invalidations: ok, deferred (pending markers expire), recorded (database backstop),"
    " replayed (from the backstop), lost (this process resyncs).",
    ["outcome"],
)
CACHE_RESYNCS = Counter(
    "app_cache_resyncs_total", "Namespace epoch replacements after lost invalidations."
)
CACHE_DECODE_ERRORS = Counter(
    "app_cache_decode_errors_total", "Cached values that failed to decode (dropped, a miss)."
)

# --- HTTP server metrics (observability/middleware.py) ---
# Names and labels are an interface: slo.yaml's rules, the dashboards and the canary analysis
# of the delivery pipeline query them. `route` is the route template, never the raw path.
# Latency SLO thresholds (slo.yaml) must be one of these bucket bounds.
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUEST_DURATION = Histogram(
    "app_http_request_duration_seconds",
    "Time from request to last response byte, by route template and method.",
    ["route", "method"],
    buckets=HTTP_DURATION_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "app_http_requests_total",
    "Responses by route template, method and status class (2xx..5xx).",
    ["route", "method", "status_class"],
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
    "app_dead_letters_depth",
    "Dead letters not yet replayed, counted in the database by the outbox housekeeping.",
)
OUTBOX_DISPATCHED = Counter(
    "app_outbox_dispatched_total", "Outbox rows handed to the queue (or the in-process runner)."
)
OUTBOX_ALREADY_QUEUED = Counter(
    "app_outbox_already_queued_total",
    "Outbox re-dispatches skipped because the job was still queued or running.",
)
JOB_TIMEOUTS = Counter(
    "app_job_timeouts_total", "Job attempts cancelled at their time limit.", ["job"]
)
JOB_LOST_TRIES = Counter(
    "app_job_lost_tries_total",
    "Job attempts that never reported back (the worker died or was stopped mid-job).",
    ["job"],
)
OUTBOX_DISPATCH_FAILURES = Counter(
    "app_outbox_dispatch_failures_total", "Relay passes stopped because the queue was down."
)
