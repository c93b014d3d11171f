"""The resolved roles x actions matrix must equal the committed snapshot.

A policy change therefore shows up as a reviewed diff of tests/rbac/snapshots/. To accept a
deliberate change: `make rbac-snapshot`, read the diff, commit both files.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.security.rbac import load_policy, render_json, render_markdown
from {{ cookiecutter.package_name }}.settings import DEFAULT_POLICY_PATH

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.mark.parametrize(
    ("name", "render"), [("rbac_matrix.md", render_markdown), ("rbac_matrix.json", render_json)]
)
def test_policy_matches_the_snapshot(name: str, render: object) -> None:
    current = render(load_policy(DEFAULT_POLICY_PATH))  # type: ignore[operator]
    committed = (SNAPSHOTS / name).read_text(encoding="utf-8")
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"snapshot/{name}",
                tofile="policy/rbac.yaml (now)",
            )
        )
        pytest.fail(
            "The RBAC policy changed. If intended, run `make rbac-snapshot` and commit the "
            f"reviewed diff:\n{diff}",
            pytrace=False,
        )
