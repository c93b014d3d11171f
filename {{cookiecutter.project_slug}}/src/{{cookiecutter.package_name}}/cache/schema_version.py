"""The cache's schema version: the alembic head plus a digest of the cached response shapes.

Computed once at start-up. A deploy that adds a migration (a data migration included: it
changes rows under cached values without changing any model), or changes a cached schema
without one, reads and writes other keys than the code before it, so it never decodes their
values. Without the migrations directory there is no head to read: start-up fails and says
where it looked, rather than silently sharing one version across every deploy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import orjson
from pydantic import BaseModel

# <project>/migrations, beside src/ (the container image copies the whole project).
MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_head(migrations_dir: Path) -> str:
    """The head revision id(s) of the migrations in `migrations_dir`."""
    if not (migrations_dir / "versions").is_dir():
        raise RuntimeError(
            f"no alembic migrations at {migrations_dir}: the cache's schema version is the "
            "alembic head; run the service from the project (or an image) with its migrations/"
        )
    # Imported here: alembic costs a good part of a second, and only start-up needs it.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    heads = ScriptDirectory.from_config(config).get_heads()
    if not heads:
        raise RuntimeError(f"the migrations at {migrations_dir} have no revision")
    return "+".join(sorted(heads))


def schema_version(models: Iterable[type[BaseModel]], migrations_dir: Path = MIGRATIONS_DIR) -> str:
    """`<alembic head>.<8 hex digits of the models' JSON schemas>`, e.g. `0001.3fa2c1d0`."""
    digest = hashlib.sha256()
    for model in sorted(models, key=lambda m: m.__qualname__):
        digest.update(orjson.dumps(model.model_json_schema(), option=orjson.OPT_SORT_KEYS))
    return f"{alembic_head(migrations_dir)}.{digest.hexdigest()[:8]}"
