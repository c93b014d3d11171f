"""Feature flags through OpenFeature: declared defaults, overridden by a file, then by the env.

A flag gates a risky flow so it can be switched off without a deploy. The provider is the
OpenFeature SDK's in-memory one, filled at start-up from three layers (later wins):

1. `FLAG_DEFAULTS` below: every flag the code checks, with its safe default;
2. the YAML file at `{{ cookiecutter.package_name|upper }}_FLAGS_FILE` (Kubernetes mounts a ConfigMap there), mapping a
   flag key to a value: `ai-summary: true`;
3. one environment variable per flag, `{{ cookiecutter.package_name|upper }}_FLAG_<KEY>` with the key upper-cased and
   `-` as `_`: `{{ cookiecutter.package_name|upper }}_FLAG_AI_SUMMARY=true`.

Swapping in a flag service (flagd, LaunchDarkly, ...) means setting another OpenFeature
provider in `open_flags`; the call sites (`FlagsDep`) do not change.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import Depends, Request
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from {{ cookiecutter.package_name }}.settings import ENV_PREFIX

FlagValue = bool | int | float | str

# Every flag the code checks. A flag missing here cannot be set by a file or the env, so a typo
# in an operator's ConfigMap fails loudly at start-up instead of silently doing nothing.
FLAG_DEFAULTS: dict[str, FlagValue] = {
    # AI summaries of tasks call a third-party model: off until an operator turns it on.
    "ai-summary": False,
}

ENV_FLAG_PREFIX = f"{ENV_PREFIX}FLAG_"
_KEY = re.compile(r"^[a-z][a-z0-9-]*$")


class FlagConfigError(ValueError):
    """A flags file or variable names an unknown flag or gives a value of the wrong type."""


def env_name(key: str) -> str:
    """The environment variable that overrides `key`: ai-summary -> ..._FLAG_AI_SUMMARY."""
    return ENV_FLAG_PREFIX + key.upper().replace("-", "_")


def _coerce(key: str, value: Any, source: str) -> FlagValue:
    default = FLAG_DEFAULTS[key]
    # bool is an int subclass: compare exact types so `1` does not pass for `true`.
    if type(value) is type(default) or (type(default) is float and type(value) is int):
        return type(default)(value)
    raise FlagConfigError(f"{source}: flag {key!r} needs a {type(default).__name__}, got {value!r}")


def resolve_values(
    file: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, FlagValue]:
    """The value of every flag after applying the file, then the environment, to the defaults."""
    values = dict(FLAG_DEFAULTS)
    if file is not None:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise FlagConfigError(f"{file}: expected a mapping of flag keys to values")
        for key, value in loaded.items():
            if key not in FLAG_DEFAULTS:
                raise FlagConfigError(f"{file}: unknown flag {key!r}; known: {sorted(values)}")
            values[key] = _coerce(key, value, str(file))
    environ = os.environ if environ is None else environ
    for key in FLAG_DEFAULTS:
        raw = environ.get(env_name(key))
        if raw is not None:
            values[key] = _coerce(key, yaml.safe_load(raw), env_name(key))
    return values


def build_provider(values: Mapping[str, FlagValue]) -> InMemoryProvider:
    """An OpenFeature in-memory provider serving `values` (one variant per flag)."""
    flags: dict[str, InMemoryFlag[Any]] = {}
    for key, value in values.items():
        if not _KEY.match(key):
            raise FlagConfigError(f"flag key {key!r} must be lowercase words joined by '-'")
        flags[key] = InMemoryFlag(default_variant="configured", variants={"configured": value})
    return InMemoryProvider(flags)


class Flags:
    """Evaluates declared flags through an OpenFeature client."""

    def __init__(self, client: OpenFeatureClient) -> None:
        self._client = client

    def enabled(self, key: str, *, org_id: str | None = None) -> bool:
        """Is boolean flag `key` on? `org_id` is the targeting key for providers that use one."""
        default = FLAG_DEFAULTS.get(key)
        if not isinstance(default, bool):
            # A typo in a flag name must fail in tests, not silently read as "off".
            raise KeyError(f"{key!r} is not a boolean flag declared in FLAG_DEFAULTS")
        context = EvaluationContext(targeting_key=org_id) if org_id else None
        return self._client.get_boolean_value(key, default, context)


def open_flags(file: Path | None, service_name: str) -> tuple[Flags, InMemoryProvider]:
    """Register a provider for this app under its own OpenFeature domain; return the client.

    The OpenFeature registry is process-global; a domain per app keeps two apps in one process
    (the tests run several) from reading each other's flags."""
    provider = build_provider(resolve_values(file))
    domain = f"{service_name}/{uuid.uuid4().hex}"
    api.set_provider(provider, domain)
    return Flags(api.get_client(domain)), provider


def _flags(request: Request) -> Flags:
    flags: Flags = request.state.flags
    return flags


FlagsDep = Annotated[Flags, Depends(_flags)]
