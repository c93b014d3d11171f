"""Helpers shared by the template's tests: load a hook, copy and bake the template, run tools."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from option_sets import OptionSet

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
HOOKS_DIR = TEMPLATE_DIR / "hooks"

# Where the services the generated project's tests use are reached. Overridable so the same
# harness runs against services elsewhere; the defaults are the ones .ci/run starts.
PG_PRIMARY = os.environ.get("BAKE_PG_PRIMARY", "postgresql://postgres@127.0.0.1:5432")
PG_REPLICA = os.environ.get("BAKE_PG_REPLICA", "postgresql://postgres@127.0.0.1:5433")
REDIS_BASE = os.environ.get("BAKE_REDIS", "redis://127.0.0.1:6379")

# Copying the template ignores what tools leave behind in a working tree.
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "*.pyc", "*.db"
)

# Variables that would point the generated project at the wrong place if inherited.
_LEAKY_ENV = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX")
_LEAKY_ENV_NAMES = ("DATABASE_URL", "DATABASE_REPLICA_URL", "REDIS_URL")


@dataclass(frozen=True)
class Baked:
    """A generated project and the answers it was generated from."""

    options: OptionSet
    path: Path


SUMMARY_KEY = pytest.StashKey[dict[str, "BakeSummary"]]()


@dataclass
class BakeSummary:
    """What the generated project's own test run reported, for the end-of-run summary."""

    counts: str = "not run"
    tail: list[str] = field(default_factory=list)


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py from its path; the Jinja placeholders in it are plain strings."""
    path = HOOKS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"template_hook_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git_visible_files(root: Path) -> list[Path] | None:
    """Files git would commit (tracked or untracked, not ignored); None outside a git tree."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None
    return [Path(p.decode()) for p in out.split(b"\0") if p and (root / p.decode()).is_file()]


def copy_template(dest: Path) -> Path:
    """Copy the template as it would be committed into `dest`, so bakes see no local debris."""
    files = git_visible_files(TEMPLATE_DIR)
    if files is None:
        shutil.copytree(TEMPLATE_DIR, dest, ignore=_IGNORED, dirs_exist_ok=True)
        return dest
    for relative in files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_DIR / relative, target)
    return dest


def bake(template: Path, output_dir: Path, extra_context: dict[str, str]) -> Path:
    """Generate a project with cookiecutter's Python API; return the project's path."""
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    project = cookiecutter(
        str(template),
        no_input=True,
        extra_context=dict(extra_context),
        output_dir=str(output_dir),
        default_config=True,
        accept_hooks=True,
    )
    return Path(project)


def project_env(**extra: str) -> dict[str, str]:
    """The environment for commands run inside a generated project."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_ENV}
    for name in list(env):
        if name in _LEAKY_ENV_NAMES or name.startswith("TEST_"):
            del env[name]
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.update(extra)
    return env


def tail(text: str, lines: int = 60) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    cmd: list[str],
    cwd: Path,
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    show_lines: int = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; on failure or timeout fail the test showing the command and its output."""
    shown = " ".join(cmd)
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env if env is not None else project_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        output = _as_text(exc.stdout) + _as_text(exc.stderr)
        pytest.fail(
            f"`{shown}` in {cwd} timed out after {timeout:.0f}s; last output:\n"
            f"{tail(output, show_lines)}",
            pytrace=False,
        )
    if proc.returncode != 0:
        output = proc.stdout + ("\n--- stderr ---\n" + proc.stderr if proc.stderr else "")
        pytest.fail(
            f"`{shown}` in {cwd} exited {proc.returncode}; output (last {show_lines} lines):\n"
            f"{tail(output, show_lines)}",
            pytrace=False,
        )
    return proc


def _as_text(data: Any) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else str(data)


_COUNT_RE = re.compile(
    r"\b(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)\b"
)


def pytest_counts(output: str) -> str:
    """Pull the counts ('212 passed, 3 skipped') out of pytest's closing line."""
    for line in reversed(output.strip().splitlines()):
        found = _COUNT_RE.findall(line)
        if found and ("passed" in line or "failed" in line or "error" in line):
            return ", ".join(f"{n} {word}" for n, word in found)
    return "no pytest summary line found"


def python_executable_dir() -> Path:
    """The bin/ folder of the interpreter running the tests (where cruft is installed)."""
    return Path(sys.executable).parent
