"""Shared fixtures: the hooks as modules, a clean copy of the template, one bake per option set."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from harness import (
    SUMMARY_KEY,
    Baked,
    BakeSummary,
    bake,
    copy_template,
    load_hook,
    run,
)
from option_sets import FULL_CHECK_SETS, OPTION_SETS, OptionSet


@pytest.fixture(scope="session")
def pre_hook() -> ModuleType:
    return load_hook("pre_gen_project")


@pytest.fixture(scope="session")
def post_hook() -> ModuleType:
    return load_hook("post_gen_project")


@pytest.fixture(scope="session")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as git would commit it, copied once per session."""
    return copy_template(tmp_path_factory.mktemp("template"))


@pytest.fixture(scope="session", params=OPTION_SETS, ids=[s.name for s in OPTION_SETS])
def baked(
    request: pytest.FixtureRequest,
    template_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Baked:
    """The template baked once per option set."""
    options: OptionSet = request.param
    out = tmp_path_factory.mktemp(f"bake-{options.name}")
    return Baked(options=options, path=bake(template_copy, out, options.extra_context))


@pytest.fixture(scope="session", params=FULL_CHECK_SETS, ids=[s.name for s in FULL_CHECK_SETS])
def synced(
    request: pytest.FixtureRequest,
    template_copy: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Baked:
    """A baked project whose environment `uv sync --locked` has installed (once per set)."""
    options: OptionSet = request.param
    out = tmp_path_factory.mktemp(f"synced-{options.name}")
    project = Baked(options=options, path=bake(template_copy, out, options.extra_context))
    run(["uv", "sync", "--locked"], project.path, timeout=900)
    return project


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SUMMARY_KEY] = {}


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Show what each generated project's own test suite reported."""
    summaries: dict[str, BakeSummary] = config.stash.get(SUMMARY_KEY, {})
    if not summaries:
        return
    terminalreporter.section("generated projects: their own test suites")
    for name, summary in summaries.items():
        terminalreporter.write_line(f"[{name}] {summary.counts}")
        for line in summary.tail:
            terminalreporter.write_line(f"    {line}")
