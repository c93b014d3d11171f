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
    "app_cache_invalidations_total", "After-commit invalidations: ok or lost.", ["outcome"]
)
CACHE_RESYNCS = Counter(
    "app_cache_resyncs_total", "Namespace epoch replacements after lost invalidations."
)
CACHE_DECODE_ERRORS = Counter(
    "app_cache_decode_errors_total", "Cached values that failed to decode (dropped, a miss)."
)
