"""Validate the answers before cookiecutter writes a single file.

Each check returns one line saying what to type instead, or None. Importing this module
runs nothing: the answers arrive through the rendered string at the bottom and are read
only by main(), so tests can import the functions from the unrendered file.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata

SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13", "3.14")

# Import names the generated service (or its test tooling) depends on: a package with one
# of these names would shadow the real library on sys.path.
DEPENDENCY_NAMES = frozenset(
    {
        "aiosqlite",
        "alembic",
        "argon2",
        "arq",
        "asyncpg",
        "email_validator",
        "fastapi",
        "httpx",
        "hypothesis",
        "itsdangerous",
        "jwt",
        "locust",
        "multipart",
        "mypy",
        "opentelemetry",
        "orjson",
        "polyfactory",
        "prometheus_client",
        "psycopg",
        "pydantic",
        "pydantic_settings",
        "pytest",
        "python_multipart",
        "redis",
        "ruff",
        "sqlalchemy",
        "starlette",
        "structlog",
        "typer",
        "uuid6",
        "uvicorn",
        "xdist",
        "yaml",
        # Folder names of the generated project itself.
        "migrations",
        "src",
        "tests",
    }
)

_STDLIB_NAMES = frozenset(getattr(sys, "stdlib_module_names", ()))


def _suggest_slug(value: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    cleaned = re.sub(r"^[^a-z]+", "", cleaned)
    return cleaned or "my-service"


def _suggest_package(value: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
    if not cleaned:
        return "my_service"
    if not cleaned[0].isalpha():
        cleaned = f"app_{cleaned}"
    if _package_problem(cleaned) is not None:
        cleaned = f"{cleaned}_service"
    return cleaned


def _package_problem(name: str) -> str | None:
    """Say why `name` cannot be the package name, without a suggestion."""
    if not name.isidentifier():
        return "is not a valid Python identifier"
    if name != name.lower():
        return "must be lowercase"
    if not PACKAGE_RE.match(name):
        return "must start with a letter and use only a-z, 0-9 and _"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if name in _STDLIB_NAMES:
        return "is a standard-library module"
    if name in DEPENDENCY_NAMES:
        return "would shadow a library the generated project uses"
    return None


def validate_slug(slug: str) -> str | None:
    """Return an error line if `slug` is not a lowercase, hyphen-separated name."""
    if SLUG_RE.match(slug):
        return None
    return (
        f'ERROR: project_slug "{slug}" must be lowercase letters and digits separated by '
        f'single hyphens, starting with a letter; choose another, e.g. "{_suggest_slug(slug)}".'
    )


def validate_package_name(name: str) -> str | None:
    """Return an error line if `name` cannot be imported safely as the project's package."""
    problem = _package_problem(name)
    if problem is None:
        return None
    return (
        f'ERROR: package_name "{name}" {problem}; choose another, e.g. "{_suggest_package(name)}".'
    )


# The project name is written verbatim into Python strings and f-strings, JSON dashboards and
# TOML: these characters would need escaping in each of them, so a name may not have them.
# (The description and the author name are escaped where they are written, so quotes and
# backslashes are fine there.)
NAME_FORBIDDEN = '"\\{}'


# Bidirectional overrides and isolates reorder how source reads ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _control_characters(value: str) -> list[str]:
    """Line breaks, tabs and other control characters: no answer spans lines or hides text."""
    return [
        c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS
    ]


def validate_text(field: str, value: str, forbidden: str = "") -> str | None:
    """Return an error line if a free-text answer holds control or `forbidden` characters."""
    found = _control_characters(value)
    if found:
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in found}))
        return (
            f"ERROR: {field} must be a single line of plain text (found {codes}); "
            "type it again on one line."
        )
    bad = sorted({c for c in value if c in forbidden})
    if bad:
        cleaned = " ".join("".join(c for c in value if c not in forbidden).split())
        listed = " ".join(bad)
        return (
            f'ERROR: {field} "{value}" must not contain {listed}; '
            f'choose another, e.g. "{cleaned or "My Service"}".'
        )
    return None


def validate_email(email: str) -> str | None:
    """Return an error line unless `email` looks like local@domain.tld (a loose check)."""
    local, at, domain = email.partition("@")
    ok = (
        bool(at)
        and bool(local)
        and "@" not in domain
        and not any(c.isspace() for c in email)
        and not _control_characters(email)
        # Written into pyproject.toml as is.
        and '"' not in email
        and "\\" not in email
        and "." in domain
        and not domain.startswith(".")
        and not domain.endswith(".")
    )
    if ok:
        return None
    return (
        f'ERROR: author_email "{email}" is not an e-mail address; '
        'type one like "engineering@example.com".'
    )


def validate_python_version(version: str) -> str | None:
    """Return an error line unless `version` is one of the supported minor versions."""
    if version in SUPPORTED_PYTHONS:
        return None
    choices = ", ".join(SUPPORTED_PYTHONS)
    return (
        f'ERROR: python_version "{version}" is not supported; '
        f'type one of {choices}, e.g. "{SUPPORTED_PYTHONS[0]}".'
    )


def validate(answers: dict[str, str]) -> list[str]:
    """Run every check over the answers; return the error lines (empty when all is well)."""
    checks = (
        validate_text("project_name", answers["project_name"], NAME_FORBIDDEN),
        validate_text("description", answers["description"]),
        validate_text("author_name", answers["author_name"]),
        validate_slug(answers["project_slug"]),
        validate_package_name(answers["package_name"]),
        validate_email(answers["author_email"]),
        validate_python_version(answers["python_version"]),
    )
    return [error for error in checks if error is not None]


def main(answers_json: str) -> int:
    """Validate the rendered answers; print each problem on one line to stderr."""
    answers = json.loads(answers_json)
    errors = validate(answers)
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


# Rendered by cookiecutter; a harmless string when the file is imported unrendered.
ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

if __name__ == "__main__":
    sys.exit(main(ANSWERS_JSON))
