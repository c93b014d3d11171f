"""The resolved roles x actions matrix must equal the committed snapshot.

A policy change therefore shows up as a reviewed diff of tests/rbac/snapshots/. To accept a
deliberate change: `make rbac-snapshot`, read the diff, commit both files.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from {{ cookiecutter.package_name }}.cli import app as cli
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


@pytest.mark.parametrize(
    ("output_format", "name"), [("md", "rbac_matrix.md"), ("json", "rbac_matrix.json")]
)
def test_the_rbac_matrix_command_prints_the_snapshot(output_format: str, name: str) -> None:
    # `make rbac-snapshot` writes the snapshots with this command: it must print exactly them.
    result = CliRunner().invoke(
        cli, ["rbac-matrix", "--format", output_format, "--policy", str(DEFAULT_POLICY_PATH)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (SNAPSHOTS / name).read_text(encoding="utf-8")


def test_the_rbac_matrix_command_names_the_bad_line_of_a_broken_policy(tmp_path: Path) -> None:
    broken = tmp_path / "rbac.yaml"
    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
    broken.write_text(
        text.replace("    - tasks:create\n", "    - tasks:fly\n", 1), encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["rbac-matrix", "--policy", str(broken)])
    assert result.exit_code == 2
    assert f"{broken}:" in result.stderr
    assert "unknown action 'tasks:fly'" in result.stderr
