"""The generated CI/CD pipeline, container and deployment files (issue 8).

Nothing here can run GitHub Actions, push an image or reach a cluster. So the workflows are
validated (GitHub's schema, zizmor offline), every `make` target a workflow calls must exist,
the Dockerfile is linted (hadolint), the Kubernetes manifests are rendered (kubectl kustomize)
and validated against the Kubernetes and CRD schemas offline, and the targets that need no
network run on the baked project (tests marked `bake`).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
Doc = dict[str, Any]  # one parsed YAML document
MAKE_CALL = re.compile(r"\bmake\s+([a-z][a-z0-9-]*)")
# A make step is a whole line: `make TARGET [VAR=value...]`, nothing piped or chained to it.
MAKE_LINE = re.compile(r"^make [a-z][a-z0-9-]*( [A-Z][A-Z0-9_]*=\S+)*$")
TARGET_LINE = re.compile(r"^([a-z][a-z0-9-]*):", re.MULTILINE)
# The only commands a workflow may run besides `make`, each with the reason it cannot be a
# target. Everything else (a `docker login`, a `curl | sh`, a kubeconfig write) belongs in the
# Makefile, where it runs locally and these tests see it.
ALLOWED_COMMANDS: dict[str, str] = {
    r'pipx install "uv==\$\{UV_VERSION\}"': (
        "installs uv, which every target needs; pipx is on GitHub's images and their python3 "
        "refuses `pip install` (PEP 668)"
    ),
    r"sudo apt-get update -q": "refreshes the runner's package index before the next line",
    r"sudo apt-get install -y -q --no-install-recommends [a-z0-9][a-z0-9 .+-]*": (
        "a tool a target calls (wrk, promtool), from Ubuntu's archive: it needs root"
    ),
    r'echo "\$\(go env GOPATH\)/bin" >> "\$GITHUB_PATH"': (
        "puts the cosign `make tools-cosign` built on PATH for the later steps"
    ),
    r'echo "[a-z][a-z0-9-]*=\$\(cat var/[a-z0-9.-]+\)" >> "\$GITHUB_OUTPUT"': (
        "hands a file a target wrote (the image digest) to later jobs as a step output"
    ),
}
ALLOWED_COMMAND = re.compile("^(?:" + "|".join(ALLOWED_COMMANDS) + ")$")
# Targets other features brought: once they exist, a workflow job must run them.
WIRED_TARGETS = (
    "explain-check",
    "perf",
    "slo-check",
    "slo-rules-unchanged",
    "seed",
    "migrations-lint",
    "prompts-check",
)
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


def _step_problems(line: str, targets: set[str]) -> list[str]:
    """Why one line of a `run:` step is neither a make target nor an allowed command."""
    if ALLOWED_COMMAND.match(line):
        return []
    if not MAKE_LINE.match(line):
        return [f"`{line}` is not a make target (nor in ALLOWED_COMMANDS, with a reason)"]
    return [f"make {t} (no such target)" for t in MAKE_CALL.findall(line) if t not in targets]


def test_every_workflow_step_is_a_makefile_target(baked: Baked) -> None:
    targets = _makefile_targets(baked.path)
    problems = [
        f"{workflow.name}: {problem}"
        for workflow in _workflows(baked)
        for line in _run_lines(workflow)
        for problem in _step_problems(line, targets)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        'echo "${GH_TOKEN}" | docker login ghcr.io --username "${GITHUB_ACTOR}" --password-stdin',
        "make install && curl -sSf https://example.com/x.sh | sh",
        "printf '%s' \"${KUBECONFIG_DATA}\" > ~/.kube/config",
        'echo "token=${{ secrets.X }}" >> "$GITHUB_OUTPUT"',
        "sudo apt-get install -y -q --no-install-recommends wrk; rm -rf /",
    ],
)
def test_the_step_check_refuses_commands_that_are_not_targets(line: str) -> None:
    assert _step_problems(line, {"install"}), line


def test_the_step_check_knows_the_targets() -> None:
    assert _step_problems("make deploy OVERLAY=staging", {"deploy"}) == []
    assert _step_problems("make nonexistent", {"deploy"}) == ["make nonexistent (no such target)"]


def _on(workflow: dict[str, object]) -> dict[str, object]:
    """The `on:` block (YAML 1.1 reads the bare key `on` as True)."""
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict)
    return triggers


def test_every_job_that_installs_uv_caches_its_downloads(baked: Baked) -> None:
    """Each job that installs uv restores the uv cache (UV_CACHE_DIR) before any target."""
    problems = []
    for workflow in _workflows(baked):
        data = yaml.safe_load(workflow.read_text(encoding="utf-8"))
        cache_dir = data.get("env", {}).get("UV_CACHE_DIR")
        for name, job in data["jobs"].items():
            steps = job.get("steps", [])
            runs = [str(s.get("run", "")) for s in steps]
            if not any("pipx install" in r and "uv==" in r for r in runs):
                continue
            if not cache_dir:
                problems.append(f"{workflow.name}: no UV_CACHE_DIR for {name}")
                continue
            first_make = next((i for i, r in enumerate(runs) if "make " in r), len(steps))
            cached = [
                s
                for s in steps[:first_make]
                if str(s.get("uses", "")).startswith("actions/cache@")
                and cache_dir in str(s["with"]["path"]).split()
            ]
            if not cached:
                problems.append(f"{workflow.name}:{name} installs uv without caching {cache_dir}")
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


def test_cd_deploys_only_a_commit_that_passed_ci_and_security(baked: Baked) -> None:
    """cd.yml calls the CI and security workflows on its own commit; every other job needs both."""
    _workflows(baked)
    _needs_deploy(baked)
    workflows = baked.path / ".github/workflows"
    cd = yaml.safe_load((workflows / "cd.yml").read_text(encoding="utf-8"))
    jobs = cd["jobs"]
    gates = {"ci": "./.github/workflows/ci.yml", "security": "./.github/workflows/security.yml"}
    for job, called in gates.items():
        assert jobs[job]["uses"] == called
        callee = yaml.safe_load((baked.path / called).read_text(encoding="utf-8"))
        assert "workflow_call" in _on(callee), f"{called} cannot be called"

    def needs(job: str) -> set[str]:
        direct = jobs[job].get("needs", [])
        direct = [direct] if isinstance(direct, str) else direct
        return set(direct).union(*(needs(d) for d in direct))

    for job in set(jobs) - set(gates):
        assert set(gates) <= needs(job), f"cd.yml job {job} does not wait for ci and security"


def _permissions(job: Doc) -> dict[str, str]:
    granted = job.get("permissions", {})
    return granted if isinstance(granted, dict) else {}


def test_cd_and_the_workflows_it_calls_fit_in_one_run(baked: Baked) -> None:
    """cd.yml and the workflows it calls share one run: unique artifacts, enough permissions."""
    _workflows(baked)
    _needs_deploy(baked)
    root = baked.path
    cd = yaml.safe_load((root / ".github/workflows/cd.yml").read_text(encoding="utf-8"))
    jobs = {f"cd.yml:{name}": job for name, job in cd["jobs"].items()}
    for name, caller in cd["jobs"].items():
        if "uses" not in caller:
            continue
        called = yaml.safe_load((root / caller["uses"]).read_text(encoding="utf-8"))
        for called_name, job in called["jobs"].items():
            jobs[f"{caller['uses']}:{called_name}"] = job
            # A called job gets at most what the calling job grants.
            for scope, level in _permissions(job).items():
                granted = _permissions(caller).get(scope, "none")
                assert (granted, level) in {("write", "read"), (level, level)}, (
                    f"cd.yml:{name} grants {scope}: {granted}, {called_name} asks {level}"
                )
    artifacts = [
        step["with"]["name"]
        for job in jobs.values()
        for step in job.get("steps", [])
        if str(step.get("uses", "")).startswith("actions/upload-artifact@")
    ]
    assert len(artifacts) == len(set(artifacts)), f"artifact names clash in one run: {artifacts}"


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
        "PersistentVolumeClaim",
    } <= kinds
    for overlay in rendered:  # staging replaces the API's steps
        rollouts, templates = _rollouts_and_templates(_documents(overlay))
        gaps = [gap for rollout in rollouts for gap in _analysis_gaps(rollout, templates)]
        assert not gaps, f"{overlay.name}:\n" + "\n".join(gaps)


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


_DURATION = re.compile(r"^(\d+)(s|m|h)?$")


def _seconds(duration: str | int) -> int:
    """An Argo Rollouts duration ("90", "30s", "10m", "1h") in seconds."""
    found = _DURATION.match(str(duration))
    assert found, f"unreadable duration {duration!r}"
    return int(found[1]) * {"s": 1, "m": 60, "h": 3600, None: 1}[found[2]]


def _documents(*paths: Path) -> list[Doc]:
    """The Kubernetes objects in `paths` (kustomize's own files and flags.yaml skipped)."""
    docs = [d for p in paths for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]
    return [d for d in docs if "kind" in d and "apiVersion" in d and "metadata" in d]


def _analysis_gaps(rollout: Doc, templates: dict[str, Doc]) -> list[str]:
    """Why a canary Rollout's background analysis would leave a step unmeasured or not abort.

    Every weight the canary holds (its pauses) must be measured: the analysis starts no later
    than the first pause and each metric runs until the rollout is done (no `count`) or for at
    least the pauses' total. A failed measurement must abort (failureLimit 0, a condition).
    """
    name = rollout["metadata"]["name"]
    canary = rollout["spec"]["strategy"]["canary"]
    steps = canary["steps"]
    analysis = canary.get("analysis")
    if not analysis:
        return [f"{name}: no background analysis"]
    start = int(analysis.get("startingStep", 0))
    pauses = [i for i, step in enumerate(steps) if "pause" in step]
    gaps = []
    if not pauses or start > pauses[0]:
        gaps.append(f"{name}: analysis starts at step {start}, after the first pause")
    held = sum(
        _seconds(steps[i]["pause"]["duration"]) if "duration" in steps[i]["pause"] else math.inf
        for i in pauses
        if i >= start
    )
    for ref in analysis["templates"]:
        for metric in templates[ref["templateName"]]["spec"]["metrics"]:
            where = f"{name}/{ref['templateName']}/{metric['name']}"
            if "count" in metric:
                measured = int(metric["count"]) * _seconds(metric["interval"]) + _seconds(
                    metric.get("initialDelay", 0)
                )
                if measured < held:
                    gaps.append(f"{where}: measures {measured}s of the {held}s of pauses")
            elif "interval" not in metric:
                gaps.append(f"{where}: one measurement only (no interval)")
            if int(metric.get("failureLimit", 0)) != 0:
                gaps.append(f"{where}: failureLimit {metric['failureLimit']} lets failures pass")
            if not ({"successCondition", "failureCondition"} & set(metric)):
                gaps.append(f"{where}: no condition, so the run is Inconclusive (a pause)")
        if templates[ref["templateName"]]["spec"].get("dryRun"):
            gaps.append(f"{name}/{ref['templateName']}: dryRun metrics never abort")
    return gaps


def _rollouts_and_templates(docs: list[Doc]) -> tuple[list[Doc], dict[str, Doc]]:
    rollouts = [d for d in docs if d["kind"] == "Rollout"]
    templates = {d["metadata"]["name"]: d for d in docs if d["kind"] == "AnalysisTemplate"}
    return rollouts, templates


def test_canary_analysis_measures_every_step_and_aborts_on_failure(baked: Baked) -> None:
    _needs_deploy(baked)
    base = baked.path / "deploy/kubernetes/base"
    rollouts, templates = _rollouts_and_templates(_documents(*sorted(base.glob("*.yaml"))))
    assert len(rollouts) == 2
    gaps = [gap for rollout in rollouts for gap in _analysis_gaps(rollout, templates)]
    assert not gaps, "\n".join(gaps)


def test_the_coverage_check_catches_an_analysis_that_stops_early(baked: Baked) -> None:
    """The audit's finding: 10 measurements of 1m against 20 minutes of API canary pauses."""
    _needs_deploy(baked)
    base = baked.path / "deploy/kubernetes/base"
    rollouts, templates = _rollouts_and_templates(_documents(*sorted(base.glob("*.yaml"))))
    api = next(r for r in rollouts if r["metadata"]["name"].endswith("-api"))
    for metric in templates["http-slo"]["spec"]["metrics"]:
        metric["count"] = 10
    assert any("measures 660s of the 1200s" in gap for gap in _analysis_gaps(api, templates))
    api["spec"]["strategy"]["canary"]["analysis"]["startingStep"] = 3
    assert any("after the first pause" in gap for gap in _analysis_gaps(api, templates))


def test_csv_storage_is_one_writable_volume_shared_by_api_and_worker(baked: Baked) -> None:
    """Uploads (written by the API, read by a worker) and exports (the reverse) need one volume."""
    _needs_deploy(baked)
    prefix = baked.options.package_name.upper()
    base = baked.path / "deploy/kubernetes/base"
    docs = _documents(*sorted(base.glob("*.yaml")))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    storage_dir = config[f"{prefix}_STORAGE_DIR"]
    assert storage_dir.startswith("/")
    # Not in the read-only code tree, not in the per-pod scratch space.
    assert storage_dir.split("/")[1] not in {"app", "tmp"}
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    used = set()
    for rollout in (d for d in docs if d["kind"] == "Rollout"):
        pod = rollout["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        where = rollout["metadata"]["name"]
        mount = next((m for m in container["volumeMounts"] if m["mountPath"] == storage_dir), None)
        assert mount, f"{where} mounts nothing at {storage_dir}"
        assert not mount.get("readOnly")
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert "persistentVolumeClaim" in volume, f"{where}: {storage_dir} is not a claim"
        claim = claims[volume["persistentVolumeClaim"]["claimName"]]
        assert "ReadWriteMany" in claim["spec"]["accessModes"]
        used.add(claim["metadata"]["name"])
    assert len(used) == 1, f"API and worker mount different claims: {used}"

    compose = yaml.safe_load((baked.path / "deploy/compose.yaml").read_text(encoding="utf-8"))
    for name in ("api", "worker"):
        service = compose["services"][name]
        assert service["read_only"] is True
        assert service["environment"][f"{prefix}_STORAGE_DIR"] == storage_dir
        (source,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == storage_dir]
        assert source in compose["volumes"], f"{name}: {source} is not a named volume"

    dockerfile = (baked.path / "deploy/Dockerfile").read_text(encoding="utf-8")
    assert f"{prefix}_STORAGE_DIR={storage_dir}" in dockerfile
    owned = rf"install --directory --owner app --group app {storage_dir}$"
    assert re.search(owned, dockerfile, re.MULTILINE)


def test_the_api_trusts_forwarded_headers_from_private_peers_only(baked: Baked) -> None:
    """uvicorn reads FORWARDED_ALLOW_IPS; per-address login limits need the real client."""
    _needs_deploy(baked)
    api = yaml.safe_load(
        (baked.path / "deploy/kubernetes/base/api-rollout.yaml").read_text(encoding="utf-8")
    )
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    value = env["FORWARDED_ALLOW_IPS"]["value"]
    networks = [ipaddress.ip_network(part.strip()) for part in value.split(",")]
    assert networks
    assert all(n.is_private and n.prefixlen >= 8 for n in networks), value


# ---------------------------------------------------------------- waiting for a rollout (fast)

# kubectl stand-in for deploy/kubernetes/rollout-wait.sh: `get rollout/NAME` prints NAME's next
# state (generation|observedGeneration|phase|currentPodHash|stableRS|message) and logs the call.
FAKE_KUBECTL = """
import json, os, sys
path = os.environ["FAKE_ROLLOUTS"]
with open(path, encoding="utf-8") as f:
    states = json.load(f)
name = next(a.split("/", 1)[1] for a in sys.argv if a.startswith("rollout/"))
print(states[name][0], end="")
if len(states[name]) > 1:
    states[name].pop(0)
with open(path, "w", encoding="utf-8") as f:
    json.dump(states, f)
with open(os.environ["FAKE_KUBECTL_LOG"], "a", encoding="utf-8") as f:
    f.write(" ".join(sys.argv[1:]) + "\\n")
"""
STALE = "2|1|Healthy|old|old|"  # right after `kubectl apply`: the previous revision's status


def _deploy_wait(
    baked: Baked, tmp_path: Path, states: dict[str, list[str]], timeout: int
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run `make deploy-wait` against a fake cluster holding `states` for each Rollout."""
    slug = baked.options.slug
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}", encoding="utf-8")
    kubectl.chmod(0o755)
    rollouts = tmp_path / "rollouts.json"
    rollouts.write_text(
        json.dumps({f"{slug}-{name}": queue for name, queue in states.items()}), encoding="utf-8"
    )
    log = tmp_path / "kubectl.log"
    log.touch()
    env = project_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        FAKE_ROLLOUTS=str(rollouts),
        FAKE_KUBECTL_LOG=str(log),
        ROLLOUT_WAIT_INTERVAL="0",
    )
    proc = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "deploy-wait",
            "OVERLAY=staging",
            f"DEPLOY_TIMEOUT={timeout}",
        ],
        cwd=baked.path,
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc, log.read_text(encoding="utf-8").splitlines()


def test_deploy_wait_outlasts_the_stale_status_until_the_new_revision_is_stable(
    baked: Baked, tmp_path: Path
) -> None:
    _needs_deploy(baked)
    api = [
        STALE,
        "2|2|Progressing|new|old|more replicas need to be updated",
        "2|2|Paused|new|old|CanaryPauseStep",
        "2|2|Healthy|new|new|",
    ]
    proc, calls = _deploy_wait(baked, tmp_path, {"api": api, "worker": ["5|5|Healthy|w|w|"]}, 600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len([c for c in calls if f"rollout/{baked.options.slug}-api" in c]) == len(api)
    assert all(f"--namespace {baked.options.slug}-staging" in c for c in calls)
    assert "revision new is stable and Healthy" in proc.stdout


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        # The old `kubectl wait --for=jsonpath={.status.phase}=Healthy` passed here at once.
        ([STALE], "not done after 0s"),
        (["2|2|Healthy|new|old|"], "not done after 0s"),  # the canary is not stable yet
        (["2|2|Paused|new|old|CanaryPauseStep"], "not done after 0s"),
    ],
)
def test_deploy_wait_fails_when_the_new_revision_is_not_done_in_time(
    baked: Baked, tmp_path: Path, api: list[str], expected: str
) -> None:
    _needs_deploy(baked)
    proc, _ = _deploy_wait(baked, tmp_path, {"api": api, "worker": ["5|5|Healthy|w|w|"]}, 0)
    assert proc.returncode != 0
    assert expected in proc.stderr


def test_deploy_wait_fails_at_once_when_the_canary_was_rolled_back(
    baked: Baked, tmp_path: Path
) -> None:
    _needs_deploy(baked)
    aborted = "2|2|Degraded|new|old|RolloutAborted: Metric error-ratio assessed Failed"
    proc, calls = _deploy_wait(baked, tmp_path, {"api": [STALE, aborted], "worker": [STALE]}, 600)
    assert proc.returncode != 0
    assert "is Degraded: the canary was aborted and rolled back" in proc.stderr
    assert len(calls) == 2  # it stopped at the rollback, never reached the worker


def test_make_deploy_verifies_applies_then_waits(baked: Baked) -> None:
    _needs_deploy(baked)
    proc = _make(baked.path, "-n", "deploy", "IMAGE_DIGEST=sha256:" + "0" * 64)
    out = proc.stdout
    assert out.index("cosign verify ") < out.index("kubectl apply") < out.index("rollout-wait.sh")


# ---------------------------------------------------------------- the targets, run (slow)


def _make(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return run(
        ["make", "--no-print-directory", *args], project, timeout=timeout, env=env or project_env()
    )


@pytest.fixture
def git_checkout(synced: Baked, tmp_path: Path) -> Path:
    """The synced project as a git checkout (the secret scan reads what git tracks)."""
    repo = tmp_path / "repo"
    shutil.copytree(synced.path, repo, symlinks=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True, timeout=60)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, timeout=60)
    return repo


@pytest.mark.bake
def test_make_security_passes_on_the_bake_and_catches_a_new_secret(git_checkout: Path) -> None:
    """security.yml's `make security`: bandit, then the secret scan of what git tracks."""
    # The committed baseline is the same for every bake: it must fit this one as it is.
    env = project_env(UV_PROJECT_ENVIRONMENT=str(git_checkout / ".venv"))
    _make(git_checkout, "security", env=env)
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
def test_make_prompts_check_passes_and_catches_an_unlocked_prompt_change(synced: Baked) -> None:
    """ci.yml's prompts job: a prompt or model pin changed without its lock fails."""
    _make(synced.path, "prompts-check")
    prompt = next((synced.path / "prompts").glob("*.yaml"))
    original = prompt.read_bytes()
    try:
        text, count = re.subn(r"^model: (.+)$", r"model: \1-next", original.decode(), flags=re.M)
        assert count == 1, f"{prompt.name} has no model pin"
        prompt.write_text(text, encoding="utf-8")
        proc = subprocess.run(
            ["make", "prompts-check"],
            cwd=synced.path,
            env=project_env(),
            text=True,
            capture_output=True,
            timeout=300,
            check=False,
        )
    finally:
        prompt.write_bytes(original)
    assert proc.returncode != 0
    assert f"{prompt.name}: changed since the lock" in proc.stdout + proc.stderr


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
def test_migration_smoke_and_schema_drift(
    synced: Baked, empty_database: str, tmp_path: Path
) -> None:
    """ci.yml's migrations job, then schema-drift.yml's compare step (`make drift-ci`)."""
    env = project_env(DATABASE_URL=f"{PG_PRIMARY}/{empty_database}")
    _make(synced.path, "migrations-check", env=env)
    outputs = tmp_path / "github_output"
    env_ci = {**env, "GITHUB_OUTPUT": str(outputs)}
    _make(synced.path, "drift-ci", env=env_ci)
    assert outputs.read_text(encoding="utf-8") == "drift=false\n"
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
        outputs.unlink()
        _make(synced.path, "drift-ci", env=env_ci)
        assert outputs.read_text(encoding="utf-8") == "drift=true\n"
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
        "registry-login",
        "image",
        "sign",
        "verify",
        "kubeconfig",
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
