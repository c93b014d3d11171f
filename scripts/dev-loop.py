#!/usr/bin/env python3
"""Template maintainers' loop: bake, edit the baked copy with real tooling, sync edits back.

    python3 scripts/dev-loop.py bake   [OUT]   # bake the defaults into OUT (default /tmp/dev-bake)
    python3 scripts/dev-loop.py unbake [OUT]   # copy edited files back into the template

`unbake` re-templates the default names (acme_service -> {{ cookiecutter.package_name }}, ...)
and refuses text that would be read as Jinja. pyproject.toml and uv.lock are not synced (they
hold the templated project name): edit them in the template; `uv lock` in the baked copy, then
copy uv.lock back with the project name re-templated (`unbake --lock`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
MANAGED = [
    "src",
    "tests",
    "migrations",
    "policy",
    "scripts",
    "perf",
    "prompts",
    "deploy",
    ".github",
    "Makefile",
    "README.md",
    "alembic.ini",
    "slo.yaml",
    "dashboards",
    "CODEOWNERS",
    ".secrets.baseline",  # issue 8: the secret scan's reviewed findings
]
SKIP = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", ".venv"}
NAMES = [
    ("ACME_SERVICE", "{{ cookiecutter.package_name|upper }}"),
    ("acme_service", "{{ cookiecutter.package_name }}"),
    ("acme-service", "{{ cookiecutter.project_slug }}"),
    ("Acme Service", "{{ cookiecutter.project_name }}"),
    ("A multi-tenant SaaS backend built on FastAPI.", "{{ cookiecutter.description }}"),
]
# Copied without rendering (cookiecutter.json _copy_without_render). The analysis templates hold
# Argo Rollouts `{{args.x}}` placeholders and no project name (issue 8).
VERBATIM = (".github/", "deploy/kubernetes/base/analysis-templates.yaml")


MAPPED = {"package_name", "project_slug", "project_name", "description"}


def _unmapped_placeholders(path: Path) -> set[str]:
    """Template variables in `path` that unbake cannot restore (python_version, author...)."""
    import re

    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return set()
    return set(re.findall(r"cookiecutter\.(\w+)", text)) - MAPPED


def bake(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "uv",
            "run",
            "--project",
            str(ROOT),
            "cookiecutter",
            "--no-input",
            "-f",
            "-o",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    print(out / "acme-service")


def unbake(out: Path, lock: bool) -> None:
    baked = out / "acme-service"
    changed: list[str] = []
    for top in MANAGED:
        base = baked / top
        if not base.exists():
            continue
        files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
        for f in files:
            if SKIP & set(f.parts):
                continue
            rel = str(f.relative_to(baked))
            data = f.read_bytes()
            if not rel.startswith(VERBATIM):
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    text = None
                if text is not None:
                    if ("{{" in text or "{%" in text or "{#" in text) and "{% raw %}" not in text:
                        sys.exit(f"{rel}: contains Jinja-like braces; wrap in {{% raw %}}")
                    for default, placeholder in NAMES:
                        text = text.replace(default, placeholder)
                    data = text.encode()
            dest = TEMPLATE / rel.replace("acme_service", "{{cookiecutter.package_name}}")
            if dest.exists() and _unmapped_placeholders(dest):
                if dest.read_bytes() != data:
                    print(
                        f"NOT synced (uses {_unmapped_placeholders(dest)}; "
                        f"edit the template): {rel}"
                    )
                continue
            if (
                dest.exists()
                and dest.stat().st_mtime > f.stat().st_mtime
                and dest.read_bytes() != data
            ):
                # Edited in the template after the bake: syncing would throw that edit away.
                print(f"NOT synced (the template's copy is newer; re-bake): {rel}")
                continue
            if not dest.exists() or dest.read_bytes() != data:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                changed.append(rel)
    for top in MANAGED:
        tbase = TEMPLATE / top.replace("acme_service", "{{cookiecutter.package_name}}")
        if tbase.is_dir():
            for f in tbase.rglob("*"):
                rel = str(f.relative_to(TEMPLATE)).replace(
                    "{{cookiecutter.package_name}}", "acme_service"
                )
                if f.is_file() and not (SKIP & set(f.parts)) and not (baked / rel).exists():
                    print(f"only in the template (deleted in the bake?): {rel}")
    if lock:
        text = (baked / "uv.lock").read_text()
        text = text.replace('name = "acme-service"', 'name = "{{ cookiecutter.project_slug }}"', 1)
        (TEMPLATE / "uv.lock").write_text(text)
        changed.append("uv.lock")
    print("synced:", *changed, sep="\n  ")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "bake"
    args = [a for a in sys.argv[2:] if not a.startswith("--")]
    out = Path(args[0] if args else "/tmp/dev-bake")  # noqa: S108 - a maintainer's scratch copy
    if command == "bake":
        bake(out)
    elif command == "unbake":
        unbake(out, lock="--lock" in sys.argv)
    else:
        sys.exit(__doc__)
