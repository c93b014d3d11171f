"""Prometheus metrics of the service, declared in one place so names stay consistent."""

from __future__ import annotations

from prometheus_client import Counter

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
