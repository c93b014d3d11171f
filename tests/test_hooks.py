"""The hooks: answer validation (pre-gen) and shaping of the generated project (post-gen)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

from harness import HOOKS_DIR, bake

# ---------------------------------------------------------------- pre-gen: validators


@pytest.mark.parametrize("slug", ["acme-service", "billing-core", "a", "api2", "x1-y2-z3"])
def test_good_slugs_pass(pre_hook: ModuleType, slug: str) -> None:
    assert pre_hook.validate_slug(slug) is None


@pytest.mark.parametrize(
    ("slug", "suggestion"),
    [
        ("Acme-Service", "acme-service"),
        ("acme_service", "acme-service"),
        ("acme--service", "acme-service"),
        ("-acme", "acme"),
        ("acme-", "acme"),
        ("9lives", "lives"),
        ("acme service", "acme-service"),
        ("", "my-service"),
    ],
)
def test_bad_slugs_are_refused_with_a_suggestion(
    pre_hook: ModuleType, slug: str, suggestion: str
) -> None:
    error = pre_hook.validate_slug(slug)
    assert error is not None
    assert error.startswith(f'ERROR: project_slug "{slug}"')
    assert f'e.g. "{suggestion}"' in error
    assert "\n" not in error
    assert pre_hook.validate_slug(suggestion) is None


@pytest.mark.parametrize("name", ["acme_service", "billing_core", "app", "svc2", "my_pkg"])
def test_good_package_names_pass(pre_hook: ModuleType, name: str) -> None:
    assert pre_hook.validate_package_name(name) is None


@pytest.mark.parametrize(
    ("name", "reason", "suggestion"),
    [
        ("class", "is a Python keyword", "class_service"),
        ("match", "is a Python keyword", "match_service"),
        ("json", "is a standard-library module", "json_service"),
        ("typing", "is a standard-library module", "typing_service"),
        ("9lives", "is not a valid Python identifier", "app_9lives"),
        ("my-pkg", "is not a valid Python identifier", "my_pkg"),
        ("Acme", "must be lowercase", "acme"),
        ("_private", "must start with a letter", "private"),
        ("fastapi", "would shadow a library", "fastapi_service"),
        ("sqlalchemy", "would shadow a library", "sqlalchemy_service"),
        ("yaml", "would shadow a library", "yaml_service"),
        ("tests", "would shadow a library", "tests_service"),
    ],
)
def test_bad_package_names_are_refused_with_a_suggestion(
    pre_hook: ModuleType, name: str, reason: str, suggestion: str
) -> None:
    error = pre_hook.validate_package_name(name)
    assert error is not None
    assert error.startswith(f'ERROR: package_name "{name}" {reason}')
    assert error.endswith(f'choose another, e.g. "{suggestion}".')
    assert "\n" not in error
    assert pre_hook.validate_package_name(suggestion) is None


def test_the_message_for_a_stdlib_name_reads_as_documented(pre_hook: ModuleType) -> None:
    assert pre_hook.validate_package_name("json") == (
        'ERROR: package_name "json" is a standard-library module; '
        'choose another, e.g. "json_service".'
    )


@pytest.mark.parametrize("email", ["engineering@example.com", "a.b+c@mail.example.org", "x@y.io"])
def test_good_emails_pass(pre_hook: ModuleType, email: str) -> None:
    assert pre_hook.validate_email(email) is None


@pytest.mark.parametrize(
    "email",
    [
        "",
        "engineering",
        "engineering@",
        "@example.com",
        "a@b@example.com",
        "a@localhost",
        "a@.example",
        "a@example.",
        "a b@example.com",
    ],
)
def test_bad_emails_are_refused(pre_hook: ModuleType, email: str) -> None:
    error = pre_hook.validate_email(email)
    assert error is not None
    assert error.startswith(f'ERROR: author_email "{email}"')
    assert "\n" not in error


@pytest.mark.parametrize("version", ["3.11", "3.12", "3.13", "3.14"])
def test_supported_python_versions_pass(pre_hook: ModuleType, version: str) -> None:
    assert pre_hook.validate_python_version(version) is None


@pytest.mark.parametrize("version", ["3.10", "3.15", "3", "3.11.4", "py311", ""])
def test_unsupported_python_versions_are_refused(pre_hook: ModuleType, version: str) -> None:
    error = pre_hook.validate_python_version(version)
    assert error is not None
    assert error.startswith(f'ERROR: python_version "{version}" is not supported')


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project_name", "Café Ledger API"),
        ("project_name", "O'Brien & Partners: Billing"),
        ("project_name", "Ledger 👩‍💻 API"),  # an emoji with a zero-width joiner
        ("description", 'Tasks with "quotes", a \\ backslash and {braces} ✨'),
        ("author_name", 'The "Skunkworks" \\ Team'),
    ],
)
def test_good_free_text_passes(pre_hook: ModuleType, field: str, value: str) -> None:
    forbidden = pre_hook.NAME_FORBIDDEN if field == "project_name" else ""
    assert pre_hook.validate_text(field, value, forbidden) is None


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [
        ('Acme "Q" Service', "Acme Q Service"),
        ("Acme \\ Service", "Acme Service"),
        ("Acme {Service}", "Acme Service"),
        ("Acme }{", "Acme"),
    ],
)
def test_a_project_name_that_would_need_escaping_is_refused(
    pre_hook: ModuleType, value: str, suggestion: str
) -> None:
    error = pre_hook.validate_text("project_name", value, pre_hook.NAME_FORBIDDEN)
    assert error is not None
    assert error.startswith(f'ERROR: project_name "{value}" must not contain ')
    assert error.endswith(f'choose another, e.g. "{suggestion}".')
    assert "\n" not in error


@pytest.mark.parametrize("field", ["project_name", "description", "author_name"])
@pytest.mark.parametrize(
    "control",
    ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u2028", "\u202e"],
    ids=["lf", "cr", "tab", "nul", "esc", "del", "line-separator", "bidi-override"],
)
def test_control_characters_are_refused_in_every_free_text_answer(
    pre_hook: ModuleType, field: str, control: str
) -> None:
    error = pre_hook.validate_text(field, f"Acme{control}Service")
    assert error is not None
    assert error.startswith(f"ERROR: {field} must be a single line of plain text (found U+")
    # The message stays one line, whatever the answer held.
    assert error.isprintable()


@pytest.mark.parametrize("email", ['a"b@example.com', "a\\b@example.com", "a\x00@example.com"])
def test_an_email_that_pyproject_cannot_hold_is_refused(pre_hook: ModuleType, email: str) -> None:
    assert pre_hook.validate_email(email) is not None


def test_importing_the_hook_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from harness import load_hook

    load_hook("pre_gen_project")
    load_hook("post_gen_project")
    assert capsys.readouterr() == ("", "")


def _answers(**overrides: str) -> dict[str, str]:
    answers = {
        "project_name": "Acme Service",
        "description": "A multi-tenant SaaS backend built on FastAPI.",
        "author_name": "Acme Engineering",
        "project_slug": "acme-service",
        "package_name": "acme_service",
        "author_email": "engineering@example.com",
        "python_version": "3.11",
    }
    answers.update(overrides)
    return answers


def test_main_reports_every_problem_on_its_own_line(
    pre_hook: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _answers(package_name="json", author_email="nope")
    assert pre_hook.main(json.dumps(bad)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('ERROR: package_name "json"')
    assert lines[1].startswith('ERROR: author_email "nope"')


def test_main_is_quiet_when_all_is_well(
    pre_hook: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pre_hook.main(json.dumps(_answers())) == 0
    assert capsys.readouterr() == ("", "")


def test_answers_with_quotes_cannot_break_the_rendered_hook(tmp_path: Path) -> None:
    """The hook embeds the answers as JSON in a raw string; render it like cookiecutter does."""
    from cookiecutter.environment import StrictEnvironment

    answers = _answers(author_email='no"""at\'sign', project_slug='bad"""slug\\')
    source = (HOOKS_DIR / "pre_gen_project.py").read_text(encoding="utf-8")
    rendered = StrictEnvironment(context={"cookiecutter": answers}).from_string(source)
    script = tmp_path / "hook.py"
    script.write_text(rendered.render(cookiecutter=answers), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 1
    assert 'ERROR: project_slug "bad"""slug\\"' in proc.stderr
    assert "ERROR: author_email" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- pre-gen: end to end


@pytest.mark.parametrize(
    "context",
    [
        {"package_name": "json"},
        {"package_name": "class"},
        {"project_slug": "Not A Slug"},
        {"author_email": "not-an-email"},
        {"python_version": "2.7"},
        {"project_name": 'Acme "Q" Service', "project_slug": "acme-q-service"},
        {"description": "two\nlines"},
    ],
    ids=[
        "stdlib-package",
        "keyword-package",
        "bad-slug",
        "bad-email",
        "old-python",
        "quoted-name",
        "multi-line-description",
    ],
)
def test_baking_bad_answers_fails_and_generates_nothing(
    template_copy: Path, tmp_path: Path, context: dict[str, str]
) -> None:
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake(template_copy, out, context)
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- post-gen


def _fake_project(root: Path) -> Path:
    for relative in (".github/workflows/ci.yml", "deploy/Dockerfile", "src/pkg/__init__.py"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("x\n", encoding="utf-8")
    licenses = root / "licenses"
    licenses.mkdir()
    for name in ("MIT", "Apache-2.0", "Proprietary"):
        (licenses / f"{name}.txt").write_text(f"{name} text\n", encoding="utf-8")
    (root / ".gitignore").write_text(".venv/\n.env\n", encoding="utf-8")
    return root


def test_prune_table_names_only_real_options() -> None:
    options = json.loads((HOOKS_DIR.parent / "cookiecutter.json").read_text(encoding="utf-8"))
    from harness import load_hook

    prune_table = load_hook("post_gen_project").PRUNE
    for option, by_answer in prune_table.items():
        assert option in options, f"PRUNE names unknown option {option!r}"
        assert set(by_answer) <= set(options[option]), f"PRUNE uses unknown answers of {option}"


@pytest.mark.parametrize(
    ("gha", "deploy", "gone", "kept"),
    [
        ("y", "y", [], [".github", "deploy"]),
        ("n", "y", [".github"], ["deploy"]),
        ("y", "n", ["deploy"], [".github"]),
        ("n", "n", [".github", "deploy"], []),
    ],
)
def test_prune_removes_exactly_the_disabled_options(
    post_hook: ModuleType,
    tmp_path: Path,
    gha: str,
    deploy: str,
    gone: list[str],
    kept: list[str],
) -> None:
    root = _fake_project(tmp_path)
    removed = post_hook.prune(root, {"include_github_actions": gha, "include_deploy": deploy})
    assert sorted(removed) == sorted(gone)
    for relative in gone:
        assert not (root / relative).exists()
    for relative in [*kept, "src/pkg/__init__.py"]:
        assert (root / relative).exists()


@pytest.mark.parametrize("license_name", ["MIT", "Apache-2.0", "Proprietary"])
def test_the_chosen_license_becomes_LICENSE(  # noqa: N802 - LICENSE is the file's name
    post_hook: ModuleType, tmp_path: Path, license_name: str
) -> None:
    root = _fake_project(tmp_path)
    post_hook.choose_license(root, license_name)
    assert (root / "LICENSE").read_text(encoding="utf-8") == f"{license_name} text\n"
    assert not (root / "licenses").exists()


def test_an_unknown_license_is_an_error(post_hook: ModuleType, tmp_path: Path) -> None:
    root = _fake_project(tmp_path)
    with pytest.raises(FileNotFoundError):
        post_hook.choose_license(root, "GPL-3.0")


def test_env_holds_a_fresh_secret_under_the_package_prefix(
    post_hook: ModuleType, tmp_path: Path
) -> None:
    first = _fake_project(tmp_path / "one")
    second = _fake_project(tmp_path / "two")
    secrets = []
    for root in (first, second):
        env_path = post_hook.write_env(root, "acme_service")
        values = dict(
            line.split("=", 1)
            for line in env_path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        )
        assert list(values) == ["ACME_SERVICE_SECRET_KEY"]
        assert len(values["ACME_SERVICE_SECRET_KEY"]) >= 64
        assert env_path.stat().st_mode & 0o077 == 0
        secrets.append(values["ACME_SERVICE_SECRET_KEY"])
    assert secrets[0] != secrets[1]


@pytest.mark.parametrize("existing", ["", ".venv/\n", ".venv/", "/.env\n", ".env\n"])
def test_env_is_always_gitignored(post_hook: ModuleType, tmp_path: Path, existing: str) -> None:
    if existing:
        (tmp_path / ".gitignore").write_text(existing, encoding="utf-8")
    post_hook.ensure_gitignored(tmp_path, ".env")
    post_hook.ensure_gitignored(tmp_path, ".env")  # idempotent
    lines = (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert sum(line in (".env", "/.env") for line in lines) == 1
    assert all(line for line in lines)


def test_next_steps_name_the_project_and_its_commands(post_hook: ModuleType) -> None:
    text = post_hook.next_steps("billing-core", "billing_core")
    for expected in (
        "cd billing-core",
        "uv sync",
        "uv run billing_core migrate",
        "uv run billing_core serve",
        "make test",
    ):
        assert expected in text


def test_without_deploy_the_delivery_workflow_and_policies_go_too(
    post_hook: ModuleType, tmp_path: Path
) -> None:
    root = _fake_project(tmp_path)
    for relative in (".github/workflows/cd.yml", "policy/checkov/check.yaml", "policy/rbac.yaml"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text("x\n", encoding="utf-8")
    removed = post_hook.prune(root, {"include_github_actions": "y", "include_deploy": "n"})
    assert sorted(removed) == [".github/workflows/cd.yml", "deploy", "policy/checkov"]
    assert (root / ".github/workflows/ci.yml").exists()
    assert (root / "policy/rbac.yaml").exists()


# ---------------------------------------------------------------- free text: escaped, end to end

TRICKY_ANSWERS = {
    "description": "Tasks & \"quotes\", a \\ backslash, {braces}, 'single' and ünïcode 🚀",
    "author_name": 'O\'Brien "Skunkworks" \\ Team',
}


def _parse(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        ast.parse(text, filename=str(path))
    elif path.suffix == ".json":
        json.loads(text)
    elif path.suffix == ".toml":
        tomllib.loads(text)
    elif path.suffix in (".yml", ".yaml"):
        list(yaml.safe_load_all(text))


@pytest.mark.bake
def test_quotes_and_backslashes_in_free_text_bake_a_valid_project(
    template_copy: Path, tmp_path: Path
) -> None:
    """The description and author name are escaped where they are written: every generated
    Python, JSON, TOML and YAML file still parses, holds the answers exactly, and two bakes
    are byte-identical."""
    first = bake(template_copy, tmp_path / "one", TRICKY_ANSWERS)
    second = bake(template_copy, tmp_path / "two", TRICKY_ANSWERS)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    differing = [
        str(rel)
        for rel in files
        if rel != Path(".env") and (first / rel).read_bytes() != (second / rel).read_bytes()
    ]
    assert not differing, f"files differ between two bakes: {differing}"
    for rel in files:
        _parse(first / rel)

    project = tomllib.loads((first / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["description"] == TRICKY_ANSWERS["description"]
    assert project["authors"][0]["name"] == TRICKY_ANSWERS["author_name"]
    package = first / "src" / "acme_service"
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8")))
    assert docstring == f"Acme Service: {TRICKY_ANSWERS['description']}"
    app_descriptions = [
        node.value.value
        for node in ast.walk(ast.parse((package / "app.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.keyword)
        and node.arg == "description"
        and isinstance(node.value, ast.Constant)
    ]
    assert app_descriptions == [TRICKY_ANSWERS["description"]]
    assert TRICKY_ANSWERS["author_name"] in (first / "LICENSE").read_text(encoding="utf-8")
