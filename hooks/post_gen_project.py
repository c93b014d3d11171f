"""Shape the freshly generated project: prune disabled options, pick the licence, add a secret.

Options remove files through the PRUNE table only, never through template conditionals
around whole files. The only random value generated is the secret in the untracked `.env`;
everything else is a pure function of the answers, so two bakes with the same answers are
byte-identical. Importing this module runs nothing.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from pathlib import Path

# option -> answer -> paths (relative to the project root) removed when that answer is given.
PRUNE: dict[str, dict[str, list[str]]] = {
    "include_github_actions": {"n": [".github"]},
    # Without deploy/ there is nothing to deliver or to check against policy (issue 8).
    "include_deploy": {"n": ["deploy", ".github/workflows/cd.yml", "policy/checkov"]},
}

LICENSES_DIR = "licenses"
ENV_FILE = ".env"


def prune(root: Path, answers: dict[str, str]) -> list[str]:
    """Delete the paths PRUNE lists for the given answers; return what was removed."""
    removed: list[str] = []
    for option, by_answer in PRUNE.items():
        for relative in by_answer.get(answers.get(option, ""), []):
            path = root / relative
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            removed.append(relative)
    return removed


def choose_license(root: Path, license_name: str) -> None:
    """Move licenses/<license_name>.txt to LICENSE and drop the other texts."""
    chosen = root / LICENSES_DIR / f"{license_name}.txt"
    if not chosen.is_file():
        raise FileNotFoundError(f"no licence text for {license_name!r} at {chosen}")
    chosen.replace(root / "LICENSE")
    shutil.rmtree(root / LICENSES_DIR)


def secret_key_name(package_name: str) -> str:
    """The settings variable holding the signing secret, e.g. ACME_SERVICE_SECRET_KEY."""
    return f"{package_name.upper()}_SECRET_KEY"


def write_env(root: Path, package_name: str) -> Path:
    """Write an untracked .env with a fresh secret, and make sure git ignores it."""
    env_path = root / ENV_FILE
    env_path.write_text(
        "# Local settings; never commit this file (it is in .gitignore).\n"
        f"{secret_key_name(package_name)}={secrets.token_urlsafe(48)}\n",
        encoding="utf-8",
    )
    env_path.chmod(0o600)
    ensure_gitignored(root, ENV_FILE)
    return env_path


def ensure_gitignored(root: Path, entry: str) -> None:
    """Append `entry` to .gitignore unless a line already ignores it."""
    gitignore = root / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    lines = {line.strip() for line in text.splitlines()}
    if entry in lines or f"/{entry}" in lines:
        return
    if text and not text.endswith("\n"):
        text += "\n"
    gitignore.write_text(f"{text}{entry}\n", encoding="utf-8")


def next_steps(project_slug: str, package_name: str) -> str:
    """The short how-to printed after a successful bake."""
    return "\n".join(
        [
            "",
            f"Created {project_slug}. Next steps:",
            f"  cd {project_slug}",
            "  uv sync",
            f"  uv run {package_name} migrate",
            f"  uv run {package_name} serve      # OpenAPI docs at http://127.0.0.1:8000/docs",
            "  make test",
            "",
        ]
    )


def main(root: Path, answers: dict[str, str]) -> int:
    """Run every post-generation step on the project at `root`."""
    prune(root, answers)
    choose_license(root, answers["license"])
    write_env(root, answers["package_name"])
    print(next_steps(answers["project_slug"], answers["package_name"]))
    return 0


# Rendered by cookiecutter; harmless strings when the file is imported unrendered. The pre-gen
# hook has already checked that these contain nothing that could break the quoting.
ANSWERS = {
    "project_slug": "{{ cookiecutter.project_slug }}",
    "package_name": "{{ cookiecutter.package_name }}",
    "license": "{{ cookiecutter.license }}",
    "include_github_actions": "{{ cookiecutter.include_github_actions }}",
    "include_deploy": "{{ cookiecutter.include_deploy }}",
}

if __name__ == "__main__":
    # cookiecutter runs post-gen hooks with the generated project as the working directory.
    sys.exit(main(Path.cwd(), ANSWERS))
