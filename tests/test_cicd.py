"""The generated CI/CD pipeline, container and deployment files (issue 8).

Nothing here can run GitHub Actions, push an image or reach a cluster. So the workflows are
validated (GitHub's schema, zizmor offline), every `make` target a workflow calls must exist,
the Dockerfile is linted (hadolint), the Kubernetes manifests are rendered (kubectl kustomize)
and validated against the Kubernetes and CRD schemas offline, and the targets that need no
network run on the baked project (tests marked `bake`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from harness import (
    PG_PRIMARY,
    TEMPLATE_DIR,
    Baked,
    project_env,
    python_executable_dir,
    run,
)

K8S_SCHEMAS = Path(__file__).parent / "k8s_schemas"
MAKE_CALL = re.compile(r"\bmake\s+([a-z][a-z0-9-]*)")
TARGET_LINE = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
# Commands a workflow may run besides `make`: bootstrapping the runner (pipx is on GitHub's
# images; their python3 refuses `pip install`, PEP 668) and wiring outputs.
BOOTSTRAP = re.compile(
    r"^(pipx install \"uv==\$\{UV_VERSION\}\"|echo .*|mkdir -p .*|printf .*"
    r"|chmod .*|sudo apt-get (update|install) .*|if .*|then|else|fi|export .*|[A-Z_]+=.*)$"
)
# Targets other features brought: once they exist, a workflow job must run them.
WIRED_TARGETS = ("explain-check", "perf", "slo-check", "slo-rules-unchanged", "seed")
TODO_TARGETS = ("explain-check", "fuzz", "perf", "slo-rules", "prompts-check", "warmup")


def _tool(name: str) -> str:
    return str(python_executable_dir() / name)


def _workflows(baked: Baked) -> list[Path]:
    workflows = sorted((baked.path / ".github" / "workflows").glob("*.yml"))
    if not workflows:
        pytest.skip("this option set has no GitHub Actions")
    return workflows


def _makefile_targets(project: Path) -> set[str]:
    return set(TARGET_LINE.findall((project / "Makefile").read_text(encoding="utf-8")))


def _run_lines(workflow: Path) -> list[str]:
    data = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    lines = []
    for job in data["jobs"].values():
        for step in job.get("steps", []):
            for line in str(step.get("run", "")).splitlines():
                if line.strip():
                    lines.append(line.strip())
    return lines


def _needs_deploy(baked: Baked) -> None:
    if not baked.options.deploy:
        pytest.skip("this option set has no deploy/")


# ---------------------------------------------------------------- workflows (fast)


def test_workflows_pass_zizmor_offline(baked: Baked) -> None:
    workflows = _workflows(baked)
    run(
        [_tool("zizmor"), "--offline", *map(str, workflows)],
        baked.path,
        timeout=120,
        env=dict(os.environ),
    )


def test_every_workflow_step_is_a_makefile_target(baked: Baked) -> None:
    targets = _makefile_targets(baked.path)
    problems = []
    for workflow in _workflows(baked):
        for line in _run_lines(workflow):
            called = MAKE_CALL.findall(line)
            problems += [
                f"{workflow.name}: make {t} (no such target)" for t in called if t not in targets
            ]
            if not called and not BOOTSTRAP.match(line):
                problems.append(f"{workflow.name}: `{line}` is not a make target")
    assert not problems, "\n".join(problems)


def test_missing_features_are_todo_comments_not_fake_jobs(baked: Baked) -> None:
    """Targets of later features are named in TODO comments until they exist for real."""
    targets = _makefile_targets(baked.path)
    text = "\n".join(w.read_text(encoding="utf-8") for w in _workflows(baked))
    for target in TODO_TARGETS:
        if target in targets or (target == "warmup" and not baked.options.deploy):
            continue  # `warmup` belongs to cd.yml, which comes with deploy/
        assert f"make {target}" in text, f"no TODO names `make {target}`"
        for line in text.splitlines():
            if f"make {target}" in line:
                assert line.lstrip().startswith("#"), f"job calls missing target: {line}"


def test_existing_gates_are_wired_into_ci(baked: Baked) -> None:
    _workflows(baked)
    targets = _makefile_targets(baked.path)
    ci = "\n".join(_run_lines(baked.path / ".github/workflows/ci.yml"))
    for target in WIRED_TARGETS:
        if target in targets:
            assert f"make {target}" in ci, f"ci.yml does not run the existing `make {target}`"
    if baked.options.deploy and "warmup" in targets:
        cd = _run_lines(baked.path / ".github/workflows/cd.yml")
        assert "make deploy-warmup" in cd


def test_workflows_ask_for_no_permission_by_default(baked: Baked) -> None:
    for workflow in _workflows(baked):
        data = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        assert data["permissions"] == {}, f"{workflow.name}: top-level permissions not empty"
        for name, job in data["jobs"].items():
            assert "permissions" in job, f"{workflow.name}:{name} does not declare permissions"


def test_cd_signs_and_verifies_before_each_deploy(baked: Baked) -> None:
    _workflows(baked)
    _needs_deploy(baked)
    cd = yaml.safe_load((baked.path / ".github/workflows/cd.yml").read_text(encoding="utf-8"))
    build = cd["jobs"]["build"]
    assert build["permissions"]["id-token"] == "write"  # keyless: the job's OIDC identity
    assert [
        s["run"]
        for s in build["steps"]
        if s.get("run", "").startswith("make image") or s.get("run", "").startswith("make sign")
    ] == ["make image", "make sign"]
    makefile = (baked.path / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^deploy: verify deploy-render", makefile, re.MULTILINE)
    assert "cosign verify-attestation --type cyclonedx" in makefile
    assert cd["jobs"]["production"]["needs"] == ["build", "staging"]


def test_github_metadata_files_match_their_schemas(baked: Baked) -> None:
    _workflows(baked)
    run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.dependabot",
            str(baked.path / ".github/dependabot.yml"),
        ],
        baked.path,
        timeout=120,
        env=dict(os.environ),
    )
    owners = (baked.path / ".github/CODEOWNERS").read_text(encoding="utf-8")
    for path in ("/prompts/", "/policy/"):
        assert re.search(rf"^{re.escape(path)}\s+@", owners, re.MULTILINE), path


def test_without_deploy_there_is_no_cd_and_no_policy(baked: Baked) -> None:
    if baked.options.deploy:
        assert (baked.path / "policy/checkov").is_dir()
        return
    assert not (baked.path / ".github/workflows/cd.yml").exists()
    assert not (baked.path / "policy/checkov").exists()


# ---------------------------------------------------------------- container and manifests (fast)


def test_shell_scripts_pass_shellcheck(baked: Baked) -> None:
    """The CI replica starter and the compose replica scripts cannot run here (no Docker)."""
    scripts = sorted(baked.path.glob("scripts/*.sh")) + sorted(baked.path.glob("deploy/**/*.sh"))
    assert scripts
    run([_tool("shellcheck"), *map(str, scripts)], baked.path, timeout=60, env=dict(os.environ))
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


def test_dockerfile_passes_hadolint(baked: Baked) -> None:
    _needs_deploy(baked)
    dockerfile = baked.path / "deploy/Dockerfile"
    run([_tool("hadolint"), str(dockerfile)], baked.path, timeout=60, env=dict(os.environ))
    text = dockerfile.read_text(encoding="utf-8")
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 3  # uv, build, runtime
    assert f"python:{baked.options.extra_context.get('python_version', '3.11')}" not in text
    assert re.search(
        r"^ARG PYTHON_VERSION="
        + re.escape(baked.options.extra_context.get("python_version", "3.11"))
        + "$",
        text,
        re.MULTILINE,
    )
    assert re.search(r"^USER \$\{APP_UID\}", text, re.MULTILINE)
    assert "HEALTHCHECK" in text


def test_compose_matches_the_compose_spec(baked: Baked) -> None:
    _needs_deploy(baked)
    compose = baked.path / "deploy/compose.yaml"
    run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)],
        baked.path,
        timeout=120,
        env=dict(os.environ),
    )
    services = yaml.safe_load(compose.read_text(encoding="utf-8"))["services"]
    assert {"api", "worker", "postgres", "postgres-replica", "redis", "otel-collector"} <= set(
        services
    )
    for mount in services["otel-collector"]["volumes"] + services["postgres"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (compose.parent / source).is_file(), f"compose mounts missing {source}"


def _kustomization_references(directory: Path) -> list[str]:
    """Files and directories a kustomization names that do not exist."""
    data = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    missing = []
    named = list(data.get("resources", [])) + list(data.get("configurations", []))
    for generator in data.get("configMapGenerator", []):
        named += generator.get("files", [])
    for relative in named:
        target = directory / relative
        if not target.exists():
            missing.append(f"{directory}: {relative}")
        elif target.is_dir():
            missing += _kustomization_references(target)
    return missing


def test_kustomizations_reference_existing_files(baked: Baked) -> None:
    _needs_deploy(baked)
    overlays = sorted((baked.path / "deploy/kubernetes/overlays").iterdir())
    assert [o.name for o in overlays] == ["production", "staging"]
    missing = [m for overlay in overlays for m in _kustomization_references(overlay)]
    assert not missing, "\n".join(missing)


@pytest.fixture(scope="session")
def k8s_validator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The schema validator of tests/k8s_schemas with its locked npm packages installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the Kubernetes schema validation")
    workdir = tmp_path_factory.mktemp("k8s-schemas")
    for name in ("package.json", "package-lock.json", "validate.mjs"):
        shutil.copy2(K8S_SCHEMAS / name, workdir / name)
    run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        workdir,
        timeout=300,
        env=dict(os.environ),
    )
    return workdir


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl (which renders kustomizations) is not installed")
    return found


def _render(kubectl: str, overlay: Path, out: Path) -> Path:
    proc = run([kubectl, "kustomize", str(overlay)], overlay, timeout=120, env=dict(os.environ))
    out.write_text(proc.stdout, encoding="utf-8")
    return out


def test_rendered_manifests_match_the_kubernetes_and_crd_schemas(
    baked: Baked, kubectl: str, k8s_validator: Path, tmp_path: Path
) -> None:
    _needs_deploy(baked)
    rendered = [
        _render(kubectl, overlay, tmp_path / f"{overlay.name}.yaml")
        for overlay in sorted((baked.path / "deploy/kubernetes/overlays").iterdir())
    ]
    proc = run(
        ["node", "validate.mjs", *map(str, rendered)],
        k8s_validator,
        timeout=120,
        env=dict(os.environ),
    )
    print(proc.stdout)
    kinds = {d["kind"] for f in rendered for d in yaml.safe_load_all(f.read_text())}
    assert {
        "Rollout",
        "AnalysisTemplate",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ExternalSecret",
        "HTTPRoute",
    } <= kinds


def test_the_schema_validator_rejects_an_invalid_rollout(
    k8s_validator: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: x}\n"
        "spec:\n  selector: {matchLabels: {a: b}}\n  template: {}\n"
        "  strategy: {canary: {steps: [{setWeight: five}]}}\n"
        "---\napiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: y}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        ["node", "validate.mjs", str(bad)],
        cwd=k8s_validator,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "setWeight must be integer" in proc.stdout
    assert "no schema for example.com/v1 Unknown" in proc.stdout


def test_analysis_templates_query_the_coordinated_slo_metrics(baked: Baked) -> None:
    _needs_deploy(baked)
    path = baked.path / "deploy/kubernetes/base/analysis-templates.yaml"
    template = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / path.relative_to(baked.path)
    assert path.read_bytes() == template.read_bytes()  # copied verbatim, like the workflows
    text = path.read_text(encoding="utf-8")
    assert "app_http_request_duration_seconds_bucket" in text
    assert (
        'app_http_requests_total{rollouts_pod_template_hash="{{args.canary-hash}}",'
        'status_class="5xx"}' in text
    )
    rollout = yaml.safe_load(
        (baked.path / "deploy/kubernetes/base/api-rollout.yaml").read_text(encoding="utf-8")
    )
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["steps"][0] == {"setWeight": 5}
    assert canary["analysis"]["templates"] == [{"templateName": "http-slo"}]


# ---------------------------------------------------------------- the targets, run (slow)


def _make(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return run(
        ["make", "--no-print-directory", *args], project, timeout=timeout, env=env or project_env()
    )


@pytest.mark.bake
def test_make_bandit(synced: Baked) -> None:
    _make(synced.path, "bandit")


@pytest.fixture
def git_checkout(synced: Baked, tmp_path: Path) -> Path:
    """The synced project as a git checkout (the secret scan reads what git tracks)."""
    repo = tmp_path / "repo"
    shutil.copytree(synced.path, repo, symlinks=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, timeout=60)
    return repo


@pytest.mark.bake
def test_make_secrets_passes_on_the_bake_and_catches_a_new_secret(git_checkout: Path) -> None:
    # The committed baseline is the same for every bake: it must fit this one as it is.
    env = project_env(UV_PROJECT_ENVIRONMENT=str(git_checkout / ".venv"))
    _make(git_checkout, "secrets", env=env)
    leak = git_checkout / "src" / "leak.py"
    leak.write_text('db_password = "Sup3r-S3cret-Value-42!"\n', encoding="utf-8")
    subprocess.run(["git", "add", "-A"], cwd=git_checkout, check=True, timeout=60)
    proc = subprocess.run(
        ["make", "secrets"],
        cwd=git_checkout,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode != 0
    assert "src/leak.py:1" in proc.stdout


@pytest.mark.bake
def test_committed_slo_rules_are_what_slo_yaml_renders(git_checkout: Path) -> None:
    if "slo-rules-unchanged" not in _makefile_targets(git_checkout):
        pytest.skip("no SLO rules in this project")
    env = project_env(UV_PROJECT_ENVIRONMENT=str(git_checkout / ".venv"))
    _make(git_checkout, "slo-rules-unchanged", env=env)
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: the rules were rendered, not checked")
    _make(git_checkout, "slo-check", env=env)


@pytest.mark.bake
def test_make_sbom_writes_a_cyclonedx_document(synced: Baked) -> None:
    _make(synced.path, "sbom")
    sbom = json.loads((synced.path / "var/sbom.cdx.json").read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    names = {c["name"] for c in sbom["components"]}
    assert {"fastapi", "sqlalchemy", "openfeature-sdk"} <= names
    assert "pytest" not in names  # runtime dependencies only
    print(f"SBOM: {len(names)} components, spec {sbom['specVersion']}")


@pytest.mark.bake
def test_make_audit_dry_run_accepts_the_locked_requirements(synced: Baked) -> None:
    _make(synced.path, "audit-dry-run")
    requirements = (synced.path / "var/requirements.txt").read_text(encoding="utf-8")
    assert "--hash=sha256:" in requirements


@pytest.fixture
def empty_database(synced: Baked) -> Iterator[str]:
    name = f"cicd_{synced.options.package_name}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_PRIMARY}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(f"{PG_PRIMARY}/postgres", autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.bake
def test_migration_smoke_and_schema_drift(synced: Baked, empty_database: str) -> None:
    env = project_env(DATABASE_URL=f"{PG_PRIMARY}/{empty_database}")
    _make(synced.path, "migrations-check", env=env)
    _make(synced.path, "drift", env=env)
    with psycopg.connect(f"{PG_PRIMARY}/{empty_database}", autocommit=True) as conn:
        conn.execute("CREATE INDEX ix_drift_probe ON users (created_at)")
    drifted = subprocess.run(
        ["make", "drift"],
        cwd=synced.path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert drifted.returncode != 0
    assert "ix_drift_probe" in drifted.stderr + drifted.stdout
    versions = synced.path / "migrations" / "versions"
    before = set(versions.glob("*.py"))
    try:
        _make(synced.path, "drift-revision", env=env)
        (written,) = set(versions.glob("*.py")) - before
        assert re.search(r"_\d{4}_schema_drift\.py$", written.name)
        assert 'drop_index(op.f("ix_drift_probe")' in written.read_text(encoding="utf-8")
    finally:
        for path in set(versions.glob("*.py")) - before:
            path.unlink()


@pytest.mark.bake
def test_make_policy_passes_and_fails_weakened_files(
    synced: Baked, kubectl: str, tmp_path: Path
) -> None:
    _needs_deploy(synced)
    _make(synced.path, "policy", timeout=900)
    weakenings = {
        # checkov's own Dockerfile check: the image must switch to a non-root user.
        "CKV_DOCKER_3": ("deploy/Dockerfile", re.compile(r"^USER .*$", re.MULTILINE), ""),
        # The project's custom policy for Argo Rollouts (policy/checkov/).
        "CKV2_ACME_1": (
            "deploy/kubernetes/base/api-rollout.yaml",
            re.compile("readOnlyRootFilesystem: true"),
            "readOnlyRootFilesystem: false",
        ),
    }
    for check, (relative, pattern, replacement) in weakenings.items():
        weakened = tmp_path / check
        shutil.copytree(synced.path, weakened, ignore=shutil.ignore_patterns(".venv", "var"))
        path = weakened / relative
        text, count = pattern.subn(replacement, path.read_text(encoding="utf-8"))
        assert count, f"{relative} no longer has what {check} guards"
        path.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            ["make", "policy"],
            cwd=weakened,
            env=project_env(),
            text=True,
            capture_output=True,
            timeout=900,
            check=False,
        )
        assert proc.returncode != 0, f"make policy passed without {check}"
        assert check in proc.stdout


@pytest.mark.bake
def test_make_deploy_render_pins_the_image_by_digest(synced: Baked, kubectl: str) -> None:
    _needs_deploy(synced)
    digest = "sha256:" + "0" * 64
    _make(synced.path, "deploy-render", "OVERLAY=production", f"IMAGE_DIGEST={digest}")
    rendered = (synced.path / "var/deploy/production.yaml").read_text(encoding="utf-8")
    images = set(re.findall(r"image: (\S+)", rendered))
    assert images == {f"ghcr.io/local/{synced.options.slug}@{digest}"}


@pytest.mark.bake
def test_network_targets_parse(synced: Baked) -> None:
    """What needs a registry, Sigstore, GitHub or a cluster: `make -n` resolves each."""
    _needs_deploy(synced)
    digest = "IMAGE_DIGEST=sha256:" + "0" * 64
    for target in (
        "audit",
        "image",
        "sign",
        "verify",
        "deploy",
        "tools-cosign",
        "drift-pr",
        "ci-replica",
        "deploy-warmup",
        "perf",
    ):
        # deploy-warmup recurses into `make warmup`, which -n still runs (printing only).
        env = project_env(WARMUP_URL="http://127.0.0.1:9", WARMUP_TOKEN="t")  # noqa: S106
        proc = _make(synced.path, "-n", target, digest, env=env)
        assert proc.stdout.strip(), target
