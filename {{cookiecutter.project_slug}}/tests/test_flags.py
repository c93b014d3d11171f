"""Feature flags: declared defaults, the flags file, then the environment; served per app."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.flags import (
    FLAG_DEFAULTS,
    FlagConfigError,
    FlagsDep,
    env_name,
    resolve_values,
)

from .conftest import make_settings, running


def test_every_flag_defaults_to_its_declared_value() -> None:
    assert resolve_values(None, environ={}) == FLAG_DEFAULTS
    assert FLAG_DEFAULTS["ai-summary"] is False


def test_the_file_overrides_the_default_and_the_env_overrides_the_file(tmp_path: Path) -> None:
    flags_file = tmp_path / "flags.yaml"
    flags_file.write_text("ai-summary: true\n", encoding="utf-8")
    assert resolve_values(flags_file, environ={})["ai-summary"] is True
    environ = {env_name("ai-summary"): "false"}
    assert env_name("ai-summary") == "{{ cookiecutter.package_name|upper }}_FLAG_AI_SUMMARY"
    assert resolve_values(flags_file, environ=environ)["ai-summary"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ai-sumary: true\n", "unknown flag 'ai-sumary'"),
        ("ai-summary: 1\n", "needs a bool"),
        ("- ai-summary\n", "expected a mapping"),
    ],
)
def test_a_bad_flags_file_is_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    flags_file = tmp_path / "flags.yaml"
    flags_file.write_text(content, encoding="utf-8")
    with pytest.raises(FlagConfigError, match=message):
        resolve_values(flags_file, environ={})


def test_a_bad_env_value_is_refused() -> None:
    with pytest.raises(FlagConfigError, match="{{ cookiecutter.package_name|upper }}_FLAG_AI_SUMMARY"):
        resolve_values(None, environ={env_name("ai-summary"): "maybe"})


def _app_reporting_the_flag(
    database_url: str, **overrides: object
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, **overrides))
    router = APIRouter()

    @router.get("/_flag")
    async def flag(flags: FlagsDep) -> dict[str, bool]:
        return {"ai-summary": flags.enabled("ai-summary", org_id="org-1")}

    @router.get("/_typo")
    async def typo(flags: FlagsDep) -> dict[str, bool]:
        return {"ai-sumary": flags.enabled("ai-sumary")}

    app.include_router(router)
    return running(app)


async def test_two_apps_in_one_process_keep_their_own_flags(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env_name("ai-summary"), raising=False)
    on = tmp_path / "on.yaml"
    on.write_text("ai-summary: true\n", encoding="utf-8")
    async with (
        _app_reporting_the_flag(database_url, flags_file=on) as enabled,
        _app_reporting_the_flag(database_url) as default,
    ):
        assert (await enabled.get("/_flag")).json() == {"ai-summary": True}
        assert (await default.get("/_flag")).json() == {"ai-summary": False}
        with pytest.raises(KeyError, match="not a boolean flag declared"):
            await default.get("/_typo")


async def test_the_service_refuses_to_start_on_a_bad_flags_file(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "flags.yaml"
    bad.write_text("no-such-flag: true\n", encoding="utf-8")
    with pytest.raises(FlagConfigError, match="unknown flag"):
        async with _app_reporting_the_flag(database_url, flags_file=bad):
            pass
