"""Pinned prompts: templates in `prompts/*.yaml` carry their id, version, model and parameters;
`prompts/prompts.lock` holds the SHA-256 of each file. A template whose hash differs from the
lock is refused at run time and fails the test suite, so every prompt change is deliberate and
reviewed: regenerate the lock with `{{ cookiecutter.package_name }} prompts-lock` and commit both.

Templates use `$name` placeholders (string.Template), never a syntax the project template
engine would interpret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

LOCK_NAME = "prompts.lock"
REQUIRED = ("id", "version", "model", "model_version", "params", "system", "user")


class PromptError(ValueError):
    """A prompt file is malformed, unknown, or does not match the lock."""


@dataclass(frozen=True)
class Prompt:
    """A loaded, lock-verified prompt."""

    id: str
    version: int
    model: str
    model_version: str
    params: dict[str, Any]
    system: str
    user: str
    sha256: str

    @property
    def ref(self) -> str:
        """`id@version`, as stored with results and logged with calls."""
        return f"{self.id}@{self.version}"

    def messages(self, **values: Any) -> list[dict[str, str]]:
        """Chat messages with the placeholders filled; a missing value raises KeyError."""
        text = {k: str(v) for k, v in values.items()}
        return [
            {"role": "system", "content": Template(self.system).substitute(text)},
            {"role": "user", "content": Template(self.user).substitute(text)},
        ]


def file_hash(path: Path) -> str:
    """SHA-256 of a prompt file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compute_lock(prompts_dir: Path) -> dict[str, str]:
    """`{file name: sha256}` for every template in the directory."""
    return {p.name: file_hash(p) for p in sorted(prompts_dir.glob("*.yaml"))}


def read_lock(prompts_dir: Path) -> dict[str, str]:
    """The committed lock (empty if there is none)."""
    path = prompts_dir / LOCK_NAME
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    hashes: dict[str, str] = data["prompts"]
    return hashes


def write_lock(prompts_dir: Path) -> dict[str, str]:
    """Regenerate the lock from the templates as they are; returns it."""
    hashes = compute_lock(prompts_dir)
    body = {
        "comment": "SHA-256 of each prompt template; regenerate with the prompts-lock command.",
        "prompts": hashes,
    }
    (prompts_dir / LOCK_NAME).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return hashes


def lock_problems(prompts_dir: Path) -> list[str]:
    """Every difference between the templates and the lock (empty when they agree)."""
    actual, locked = compute_lock(prompts_dir), read_lock(prompts_dir)
    problems = [f"{n}: not in the lock" for n in sorted(set(actual) - set(locked))]
    problems += [f"{n}: in the lock but missing" for n in sorted(set(locked) - set(actual))]
    problems += [
        f"{n}: changed since the lock (hash {actual[n][:12]} != {locked[n][:12]})"
        for n in sorted(set(actual) & set(locked))
        if actual[n] != locked[n]
    ]
    return problems


def load_prompt(prompts_dir: Path, prompt_id: str) -> Prompt:
    """The prompt `prompt_id`, verified against the lock."""
    path = prompts_dir / f"{prompt_id}.yaml"
    if not path.exists():
        raise PromptError(f"no prompt {prompt_id!r} in {prompts_dir}")
    digest = file_hash(path)
    if read_lock(prompts_dir).get(path.name) != digest:
        raise PromptError(
            f"{path.name} does not match {LOCK_NAME}; review the change and run "
            "`{{ cookiecutter.package_name }} prompts-lock`"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED if key not in (data or {})]
    if missing:
        raise PromptError(f"{path.name}: missing keys {missing}")
    if data["id"] != prompt_id:
        raise PromptError(f"{path.name}: id {data['id']!r} does not match the file name")
    return Prompt(
        id=data["id"],
        version=int(data["version"]),
        model=str(data["model"]),
        model_version=str(data["model_version"]),
        params=dict(data["params"]),
        system=str(data["system"]),
        user=str(data["user"]),
        sha256=digest,
    )
