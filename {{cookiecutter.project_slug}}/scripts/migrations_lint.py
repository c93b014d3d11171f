"""Lint the SQL of every migration for locking hazards with squawk (`make migrations-lint`).

Each revision is rendered offline for PostgreSQL, the production database (`alembic upgrade
PREV:REV --sql`: no database needed), into var/migrations-sql/NNNN_<rev>.sql, and squawk checks
every file. It exits non-zero on a finding: an index built without CONCURRENTLY on an
existing table, a column added NOT NULL without a default, a constraint validated under an
ACCESS EXCLUSIVE lock, a missing lock_timeout, a transaction left open...

    uv run python scripts/migrations_lint.py [--migrations DIR]
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]
PG_VERSION = "17"  # the version CI's service container and deploy/ run
# Rules squawk applies that this project decides against, and why.
EXCLUDED = {
    # varchar(n) limits mirror the API's validation on purpose; widening one later is a
    # metadata-only change since PostgreSQL 9.2 (no rewrite, a brief lock).
    "prefer-text-field": "deliberate length limits",
    # The integer columns are counters (attempts, rows of one import) far below 2**31.
    "prefer-bigint-over-int": "small counters",
    # A statement_timeout would cut a long CONCURRENTLY index build or backfill batch;
    # lock_timeout (env.py) is what keeps a migration from stalling traffic behind its lock.
    "require-statement-timeout": "long builds are expected; lock_timeout guards traffic",
    # IF NOT EXISTS everywhere: each revision is one transaction (all or nothing), and a
    # revision that commits part-way resumes by design (0004 checks for its column); on a
    # CONCURRENTLY index it would keep the INVALID index a failed build leaves (0005).
    "prefer-robust-stmts": "transactional revisions; part-way commits resume explicitly",
}


def render(migrations: Path, out_dir: Path) -> list[Path]:
    """Write each revision's offline upgrade SQL, oldest first; the files written."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    # Offline: the URL only picks the dialect; nothing connects to it.
    config.attributes["database_url"] = "postgresql+asyncpg://lint@localhost/lint"
    config.attributes["configure_logger"] = False
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.sql"):
        old.unlink()
    revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
    written: list[Path] = []
    for number, script in enumerate(revisions, start=1):
        if isinstance(script.down_revision, tuple):
            raise SystemExit(f"{script.revision}: merge revisions are not supported here")
        buffer = io.StringIO()
        config.output_buffer = buffer
        command.upgrade(config, f"{script.down_revision or 'base'}:{script.revision}", sql=True)
        path = out_dir / f"{number:04d}_{script.revision}.sql"
        path.write_text(buffer.getvalue(), encoding="utf-8")
        written.append(path)
    return written


def squawk() -> str:
    """The squawk executable of this environment (the squawk-cli dev dependency)."""
    found = shutil.which("squawk") or shutil.which("squawk", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("squawk not found: `uv sync` installs squawk-cli (dev group)")
    return found


def lint(migrations: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Render every revision and run squawk on the files; its completed process."""
    files = render(migrations, out_dir)
    return subprocess.run(  # noqa: S603 - our own files, a fixed executable
        [
            squawk(),
            f"--pg-version={PG_VERSION}",
            f"--exclude={','.join(sorted(EXCLUDED))}",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def main() -> int:
    """Lint, print squawk's report, and exit with its status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=Path, default=ROOT / "migrations")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "migrations-sql")
    args = parser.parse_args()
    result = lint(args.migrations, args.out)
    print(result.stdout + result.stderr, end="")
    if result.returncode == 0:
        print(f"migrations-lint: {len(list(args.out.glob('*.sql')))} revisions, no finding")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
