"""The template repository itself: its options, its scripts and its CI entry point."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

from harness import TEMPLATE_DIR, python_executable_dir, run

EXPECTED_KEYS = [
    "project_name",
    "project_slug",
    "package_name",
    "description",
    "author_name",
    "author_email",
    "python_version",
    "license",
    "include_github_actions",
    "include_deploy",
]


def _options() -> dict[str, object]:
    return json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))


def _defaults(**extra: str) -> dict[str, str]:
    context = generate_context(
        context_file=str(TEMPLATE_DIR / "cookiecutter.json"), extra_context=extra
    )
    return prompt_for_config(context, no_input=True)


def test_options_come_in_the_documented_order() -> None:
    keys = [k for k in _options() if not k.startswith("_")]
    assert keys == EXPECTED_KEYS


def test_every_option_has_a_prompt() -> None:
    prompts = _options()["__prompts__"]
    assert isinstance(prompts, dict)
    assert set(prompts) == set(EXPECTED_KEYS)


def test_the_defaults_are_valid_answers(pre_hook: ModuleType) -> None:
    answers = _defaults()
    assert answers["project_slug"] == "acme-service"
    assert answers["package_name"] == "acme_service"
    assert answers["license"] == "MIT"
    assert answers["include_github_actions"] == "y"
    assert answers["include_deploy"] == "y"
    assert pre_hook.validate(answers) == []


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Billing Core", "billing-core", "billing_core"),
        ("Café Ledger API", "cafe-ledger-api", "cafe_ledger_api"),
        ("ACME  orders_v2", "acme-orders-v2", "acme_orders_v2"),
    ],
)
def test_slug_and_package_derive_from_the_project_name(
    pre_hook: ModuleType, project_name: str, slug: str, package: str
) -> None:
    answers = _defaults(project_name=project_name)
    assert (answers["project_slug"], answers["package_name"]) == (slug, package)
    assert pre_hook.validate(answers) == []


def test_licence_texts_exist_for_every_choice() -> None:
    licenses = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / "licenses"
    choices = _options()["license"]
    assert isinstance(choices, list)
    assert sorted(p.stem for p in licenses.glob("*.txt")) == sorted(choices)


@pytest.mark.parametrize("script", ["scripts/pg-replica.sh", ".ci/run"])
def test_shell_scripts_are_executable_and_parse(script: str) -> None:
    path = TEMPLATE_DIR / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (TEMPLATE_DIR / "README.md").read_text(encoding="utf-8")
    ci = (TEMPLATE_DIR / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme
    assert "\nmake test" in ci


def test_the_template_workflow_matches_the_github_schema() -> None:
    tool = str(python_executable_dir() / "check-jsonschema")
    workflows = sorted(str(p) for p in (TEMPLATE_DIR / ".github" / "workflows").glob("*.yml"))
    assert workflows
    schema = ["--builtin-schema", "vendor.github-workflows"]
    run([tool, *schema, *workflows], TEMPLATE_DIR, timeout=120, env=dict(os.environ))


def test_replica_script_refuses_unknown_commands(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(TEMPLATE_DIR / "scripts" / "pg-replica.sh"), "bogus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PG_REPLICA_LOG_DIR": str(tmp_path)},
    )
    assert proc.returncode != 0
    assert "unknown command 'bogus'" in proc.stderr
