"""The Redis side: an arq pool that connects lazily, JSON-serialised, and its dispatcher.

Jobs travel as JSON, never pickle: whoever can write to Redis must not be able to run code in
the worker. The pool is created without connecting, so the API starts while Redis is down;
an enqueue then fails and the outbox rows simply wait.
"""

from __future__ import annotations

import json
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool

from {{ cookiecutter.package_name }}.jobs.registry import JobArgs
from {{ cookiecutter.package_name }}.settings import Settings


def dumps(value: Any) -> bytes:
    """arq job serializer: compact JSON."""
    return json.dumps(value, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """arq job deserializer."""
    return json.loads(data)


def arq_pool(settings: Settings, redis_url: str | None = None) -> ArqRedis:
    """An ArqRedis client for the job queue; no connection is made until first use."""
    url = redis_url or settings.redis_url
    if url is None:
        raise ValueError("arq_pool needs a Redis URL")
    pool = ConnectionPool.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    return ArqRedis(
        pool,
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=settings.jobs_queue_name,
    )


class ArqDispatcher:
    """Enqueue into arq; the outbox id is the arq job id, so a re-dispatch is a no-op while
    the job is still queued or running. Workers keep no results (`keep_result=0`, the
    durable state is in the database), so once a job ended its id can be dispatched again."""

    system = "arq"

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    async def dispatch(self, name: str, args: JobArgs, meta: JobArgs, job_id: str) -> bool:
        """Enqueue the job; False when arq already holds a job with this id. Redis errors
        propagate to the relay."""
        job = await self.redis.enqueue_job(
            name, args, meta, _job_id=job_id, _queue_name=self.queue_name
        )
        return job is not None
