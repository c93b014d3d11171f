"""Bake the template with each option set, check the output, then run the project's own checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import psycopg
import pytest
import yaml

from harness import (
    PG_PRIMARY,
    PG_REPLICA,
    REDIS_BASE,
    SUMMARY_KEY,
    TEMPLATE_DIR,
    Baked,
    BakeSummary,
    bake,
    project_env,
    pytest_counts,
    python_executable_dir,
    run,
    tail,
)
from option_sets import LICENSE_MARKERS

PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
JINJA_LEFTOVER = re.compile(r"\{\{|\{%")
# Generated files where literal `{{` / `{%` are intended, with the reason. Keep this short:
# every entry is a file where a forgotten placeholder would go unnoticed.
ALLOWED_LITERAL_BRACES: dict[str, str] = {
    # Argo Rollouts `{{args.x}}` placeholders; copied without rendering (_copy_without_render).
    "deploy/kubernetes/base/analysis-templates.yaml": "Argo Rollouts argument placeholders",
}
# GitHub Actions expressions, `${{ ... }}`, are meant to reach the generated workflows intact.
GHA_EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
SECRET_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(\S+)$", re.MULTILINE)


def _files(root: Path) -> dict[str, Path]:
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_workflow(relative: str) -> bool:
    return relative.startswith(".github/workflows/") and relative.endswith((".yml", ".yaml"))


# ---------------------------------------------------------------- structure (fast)


def test_project_folder_and_package_are_named_from_the_answers(baked: Baked) -> None:
    assert baked.path.name == baked.options.slug
    package = baked.path / "src" / baked.options.package_name
    assert (package / "__init__.py").is_file(), f"missing package {package}"


def test_options_prune_exactly_what_they_say(baked: Baked) -> None:
    options = baked.options
    workflows = baked.path / ".github" / "workflows"
    if options.github_actions:
        assert sorted(workflows.glob("*.y*ml")), "include_github_actions=y but no workflow"
    else:
        assert not (baked.path / ".github").exists()
    if options.deploy:
        assert (baked.path / "deploy").is_dir(), "include_deploy=y but no deploy/"
    else:
        assert not (baked.path / "deploy").exists()


def test_the_chosen_license_is_the_only_one(baked: Baked) -> None:
    license_text = (baked.path / "LICENSE").read_text(encoding="utf-8")
    assert LICENSE_MARKERS[baked.options.license] in license_text
    author = baked.options.extra_context.get("author_name", "Acme Engineering")
    assert author in license_text
    assert not (baked.path / "licenses").exists()


def test_no_template_syntax_is_left_behind(baked: Baked) -> None:
    leftovers = []
    for relative, path in _files(baked.path).items():
        text = _text(path)
        if text is None:
            continue
        if any(fnmatch(relative, pattern) for pattern in ALLOWED_LITERAL_BRACES):
            continue
        if _is_workflow(relative):
            text = GHA_EXPRESSION.sub("", text)
        for number, line in enumerate(text.splitlines(), start=1):
            if JINJA_LEFTOVER.search(line):
                leftovers.append(f"{relative}:{number}: {line.strip()}")
    assert not leftovers, (
        "template syntax left in the generated project (if a file needs literal braces, list it "
        "in ALLOWED_LITERAL_BRACES):\n" + "\n".join(leftovers[:50])
    )


def test_github_actions_expressions_survive(baked: Baked) -> None:
    if not baked.options.github_actions:
        pytest.skip("this option set has no GitHub Actions")
    source = PROJECT_TEMPLATE / ".github" / "workflows"
    generated = baked.path / ".github" / "workflows"
    # cd.yml delivers deploy/: the post-gen hook prunes it with include_deploy=n (issue 8).
    pruned = set() if baked.options.deploy else {"cd.yml"}
    for template_file in sorted(source.glob("*.y*ml")):
        if template_file.name in pruned:
            assert not (generated / template_file.name).exists()
            continue
        expected = template_file.read_text(encoding="utf-8").count("${{")
        actual = (generated / template_file.name).read_text(encoding="utf-8").count("${{")
        assert actual == expected, f"{template_file.name}: {actual} of {expected} `${{{{` kept"


def test_yaml_files_parse(baked: Baked) -> None:
    broken = []
    for relative, path in _files(baked.path).items():
        if not relative.endswith((".yml", ".yaml")):
            continue
        try:
            list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            broken.append(f"{relative}: {exc}")
    assert not broken, "\n".join(broken)


def test_workflows_match_the_github_schema(baked: Baked) -> None:
    workflows = sorted((baked.path / ".github" / "workflows").glob("*.y*ml"))
    if not workflows:
        pytest.skip("no workflows in this option set")
    tool = str(python_executable_dir() / "check-jsonschema")
    schema = ["--builtin-schema", "vendor.github-workflows"]
    run([tool, *schema, *map(str, workflows)], baked.path, timeout=120, env=dict(os.environ))


def test_env_has_a_secret_and_is_gitignored(baked: Baked) -> None:
    env_text = (baked.path / ".env").read_text(encoding="utf-8")
    found = dict(SECRET_LINE.findall(env_text))
    key = f"{baked.options.package_name.upper()}_SECRET_KEY"
    assert key in found, f".env lacks {key}"
    assert len(found[key]) >= 64
    ignored = (baked.path / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in {line.strip().lstrip("/") for line in ignored}


def test_the_template_gitignore_lists_env() -> None:
    """The post-gen hook adds `.env` if missing; the template should not rely on that."""
    gitignore = PROJECT_TEMPLATE / ".gitignore"
    assert gitignore.is_file(), "the generated project needs a .gitignore"
    lines = {
        line.strip().lstrip("/") for line in gitignore.read_text(encoding="utf-8").splitlines()
    }
    assert ".env" in lines


def test_two_bakes_with_the_same_answers_are_byte_identical(
    baked: Baked, template_copy: Path, tmp_path: Path
) -> None:
    again = bake(template_copy, tmp_path, baked.options.extra_context)
    first, second = _files(baked.path), _files(again)
    first.pop(".env")
    second.pop(".env")
    assert sorted(first) == sorted(second)
    differing = [
        relative
        for relative in first
        if first[relative].read_bytes() != second[relative].read_bytes()
        or first[relative].stat().st_mode != second[relative].stat().st_mode
    ]
    assert not differing, f"files differ between two bakes: {differing}"
    assert (baked.path / ".env").read_bytes() != (again / ".env").read_bytes()


def test_bake_is_a_clean_git_tree(baked: Baked, tmp_path: Path) -> None:
    """Only .env (and nothing tracked) is ignored: every generated file would be committed."""
    repo = tmp_path / "repo"
    subprocess.run(["cp", "-a", f"{baked.path}/.", str(repo)], check=True, timeout=60)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    ignored = subprocess.run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    assert ignored == [".env"], f"generated files that .gitignore hides: {ignored}"


# ---------------------------------------------------------------- the project's own checks (slow)


@pytest.mark.bake
def test_ruff_check(synced: Baked) -> None:
    run(["uv", "run", "--locked", "ruff", "check", "."], synced.path, timeout=300)


@pytest.mark.bake
def test_ruff_format(synced: Baked) -> None:
    run(["uv", "run", "--locked", "ruff", "format", "--check", "."], synced.path, timeout=300)


@pytest.mark.bake
def test_mypy_strict(synced: Baked) -> None:
    package = f"src/{synced.options.package_name}"
    run(["uv", "run", "--locked", "mypy", "--strict", package], synced.path, timeout=900)


@pytest.fixture
def fresh_database(synced: Baked) -> Iterator[str]:
    """An empty PostgreSQL database, dropped afterwards; yields its asyncpg URL."""
    name = f"bake_{synced.options.package_name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_PRIMARY}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_PRIMARY.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        with psycopg.connect(f"{PG_PRIMARY}/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.bake
def test_migrations_upgrade_downgrade_upgrade(synced: Baked, fresh_database: str) -> None:
    env = project_env(DATABASE_URL=fresh_database)
    for step in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        run(["uv", "run", "--locked", "alembic", *step], synced.path, timeout=300, env=env)


@pytest.mark.bake
def test_explain_budgets_hold_on_a_seeded_database(synced: Baked, fresh_database: str) -> None:
    """The project's own explain-check, on 200,000 seeded tasks: no seq scan, within budget."""
    env = project_env(DATABASE_URL=fresh_database)
    package = synced.options.package_name
    run(["uv", "run", "--locked", package, "migrate"], synced.path, timeout=300, env=env)
    run(
        ["uv", "run", "--locked", package, "seed", "--tasks", "200000"],
        synced.path,
        timeout=600,
        env=env,
    )
    checked = run(
        ["uv", "run", "--locked", package, "explain-check"], synced.path, timeout=300, env=env
    )
    print(checked.stdout)
    assert "OVER BUDGET" not in checked.stdout
    assert "SEQ SCAN" not in checked.stdout


_PYTHON = ["uv", "run", "--locked", "python"]


def _benchmark_prints(
    synced: Baked,
    cmd: list[str],
    env: dict[str, str],
    figures: tuple[str, ...],
    *,
    timeout: float = 600,
    shown: int = 10,
) -> None:
    """Run one of the bake's benchmarks (a rot check: its figures mean nothing on a shared
    machine) and require every one of `figures` in what it printed."""
    result = run(cmd, synced.path, timeout=timeout, env=env)
    print(tail(result.stdout, shown))
    for figure in figures:
        assert figure in result.stdout


@pytest.mark.bake
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_perf_runner_still_runs_every_scenario(synced: Baked) -> None:
    """`make perf-smoke`: the load runner against this bake on a few thousand tasks, the FastAPI
    floor included (a rot check; figures on a shared CI machine mean nothing, so no budget is
    judged)."""
    env = project_env(
        PERF_DATABASE_URL=f"{PG_PRIMARY}/postgres",
        PERF_REDIS_URL=f"{REDIS_BASE}/{synced.options.redis_db + 8}",
    )
    _benchmark_prints(
        synced,
        ["make", "--no-print-directory", "perf-smoke"],
        env,
        (
            "GET task, cache hit",
            "list 100 tasks, deep page",
            "PUT task by external",
            "FastAPI floor /cached/items/{id}, hit",
            "list 100 tasks, first page: floor ",
        ),
        timeout=900,
        shown=30,
    )


@pytest.mark.bake
def test_read_layers_benchmark_still_runs(synced: Baked) -> None:
    """`make perf-layers` on a few thousand tasks: each layer of a task read is timed (a rot
    check: it reaches into the repository's prebuilt statements, which may be renamed)."""
    _benchmark_prints(
        synced,
        [*_PYTHON, "perf/read_layers.py", "--tasks", "3000", "--reads", "50", "--rounds", "1"],
        project_env(PERF_DATABASE_URL=f"{PG_PRIMARY}/postgres"),
        ("one task (a cache miss)", "first page of 100 tasks", "+ read session and repository"),
    )


@pytest.mark.bake
def test_job_benchmark_still_runs(synced: Baked) -> None:
    """`make perf-jobs` on a small load: webhooks, export and the 10,000-line import all run
    (a rot check: it once imported a test library the project had dropped)."""
    env = project_env(
        BENCH_DATABASE_URL=f"{PG_PRIMARY}/postgres",
        BENCH_REDIS_URL=f"{REDIS_BASE}/{synced.options.redis_db + 4}",  # flushed by the bench
    )
    _benchmark_prints(
        synced,
        [*_PYTHON, "perf/bench_jobs.py", "--deliveries", "50", "--export-rows", "2000"],
        env,
        ("deliveries/s per worker", "export: 2000 rows", "import (again)"),
    )


@pytest.mark.bake
def test_cache_benchmark_still_runs(synced: Baked) -> None:
    """`make perf-cache` on a small load: every scenario runs and the black-holed Redis opens
    the breaker (a rot check: a fixed ten requests stopped opening it once the breaker wanted
    its failures to span half a second)."""
    _benchmark_prints(
        synced,
        [*_PYTHON, "perf/bench_cache.py", "--tasks", "40", "--rounds", "1"],
        project_env(TEST_DATABASE_URL=f"{PG_PRIMARY}/postgres"),
        ("cache hit", "Redis unreachable, breaker open", "tripping the breaker took"),
    )


@pytest.mark.bake
def test_generated_test_suite_passes(synced: Baked, pytestconfig: pytest.Config) -> None:
    env = project_env(
        TEST_DATABASE_URL=f"{PG_PRIMARY}/postgres",
        TEST_REPLICA_URL=f"{PG_REPLICA}/postgres",
        TEST_REDIS_URL=f"{REDIS_BASE}/{synced.options.redis_db}",
    )
    summary = BakeSummary()
    pytestconfig.stash[SUMMARY_KEY][synced.options.name] = summary
    # -n auto: each pytest-xdist worker gets its own database copied from a migrated template.
    cmd = ["uv", "run", "--locked", "pytest", "-q", "-p", "no:cacheprovider", "-n", "auto"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=synced.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=2400,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        summary.counts = "timed out after 2400s"
        partial = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        pytest.fail(f"generated project's pytest timed out:\n{tail(partial, 150)}", pytrace=False)
    output = proc.stdout + proc.stderr
    summary.counts = f"{pytest_counts(output)} (exit {proc.returncode})"
    summary.tail = tail(output, 5).splitlines()
    if proc.returncode != 0:
        pytest.fail(
            f"generated project's pytest exited {proc.returncode}:\n{tail(output, 150)}",
            pytrace=False,
        )
    print(tail(output, 25))  # shown with -rA or -s; the end-of-run summary repeats the counts
    assert " passed" in summary.counts
