"""The cache's schema version: the alembic head plus a digest of the cached response shapes.

Computed once at start-up. A deploy that adds a migration, or changes a cached schema without
one, reads and writes other keys than the code before it, so it never decodes their values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import orjson
from alembic.config import Config
from alembic.script import ScriptDirectory
from pydantic import BaseModel

# <project>/migrations, beside src/ (the container image copies the whole project).
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_head(migrations_dir: Path) -> str:
    """The head revision id of the migrations in `migrations_dir` ("none" without any)."""
    if not migrations_dir.is_dir():
        return "none"
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    heads = ScriptDirectory.from_config(config).get_heads()
    return "+".join(sorted(heads)) or "none"


def schema_version(models: Iterable[type[BaseModel]], migrations_dir: Path = MIGRATIONS_DIR) -> str:
    """`<alembic head>.<8 hex digits of the models' JSON schemas>`, e.g. `0001.3fa2c1d0`."""
    digest = hashlib.sha256()
    for model in sorted(models, key=lambda m: m.__qualname__):
        digest.update(orjson.dumps(model.model_json_schema(), option=orjson.OPT_SORT_KEYS))
    return f"{alembic_head(migrations_dir)}.{digest.hexdigest()[:8]}"
