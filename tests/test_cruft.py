"""The template works with cruft, the tool generated projects use to pull template updates."""

from __future__ import annotations

import json
from pathlib import Path

from harness import copy_template, project_env, python_executable_dir, run

GIT = ["git", "-c", "user.name=template-tests", "-c", "user.email=tests@example.com"]


def test_cruft_create_records_the_template(tmp_path: Path) -> None:
    template = copy_template(tmp_path / "template")
    env = project_env()
    run([*GIT, "init", "-q", "-b", "main"], template, timeout=60, env=env)
    run([*GIT, "add", "-A"], template, timeout=60, env=env)
    run([*GIT, "commit", "-q", "-m", "template"], template, timeout=60, env=env)

    out = tmp_path / "out"
    cruft = str(python_executable_dir() / "cruft")
    run(
        [cruft, "create", str(template), "--no-input", "--output-dir", str(out)],
        tmp_path,
        timeout=300,
        env=env,
    )

    project = out / "acme-service"
    record = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert record["template"] == str(template)
    assert record["context"]["cookiecutter"]["package_name"] == "acme_service"
    assert (project / "LICENSE").is_file()
    assert (project / ".env").is_file()
