"""Alembic per service: the env.py body every service shares, upgrade-to-head, and the
image's one-shot `migrate` job (`python -m hc_common.migrations SERVICE_ROOT`).

A migration run on PostgreSQL holds an advisory lock for its whole upgrade, so that two
runs at once (two jobs, a job and `make run`) take turns: the second finds the database at
head and does nothing, instead of both creating the same tables. The lock is a session's:
it needs a direct connection to PostgreSQL (`MIGRATION_DATABASE_URL`), not PgBouncer in
transaction mode, which hands each transaction to any server connection.
"""

import asyncio
import os
import sys
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from hc_common.db import make_engine, normalise_url

# The advisory lock's key: any fixed bigint ("hc_migra"). Advisory locks are per database,
# so the services' migrations (each on a database of its own) do not wait for each other.
MIGRATION_LOCK_KEY = 0x68635F6D69677261


def run_env(target_metadata: MetaData) -> None:
    """Called from a service's `migrations/env.py`; runs online against the configured URL."""
    config = context.config
    url = normalise_url(config.get_main_option("sqlalchemy.url") or "")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    def do_run_locked(connection: Connection) -> None:
        if connection.dialect.name != "postgresql":
            # SQLite: one writer at a time already, and nothing to lock across machines.
            do_run(connection)
            return
        # A session-level lock, held across the migration's own transaction (hence the commit:
        # Alembic then begins and commits its transaction itself).
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            do_run(connection)
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()

    async def run_async() -> None:
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(do_run_locked)
        finally:
            await engine.dispose()

    existing = config.attributes.get("connection")
    if existing is not None:
        # The caller's connection and transaction (a test's): it does its own locking, if any.
        do_run(existing)
    else:
        asyncio.run(run_async())


def alembic_config(service_root: Path, url: str | None) -> Config:
    """The service's Alembic configuration; with no `url`, its env.py takes the service's own
    settings' (DATABASE_URL, else SQLite under DATA_DIR)."""
    cfg = Config(str(service_root / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_root / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_head(service_root: Path, url: str | None) -> None:
    """Bring the service's database to the newest revision (blocking; run before serving)."""
    command.upgrade(alembic_config(service_root, url), "head")


def main(argv: list[str] | None = None) -> int:
    """The `migrate` job: SERVICE_ROOT holds the service's alembic.ini and migrations/.

    The URL is `MIGRATION_DATABASE_URL` (a direct connection, where the services reach
    PostgreSQL through PgBouncer), else `DATABASE_URL`; with neither, the service's settings'
    (SQLite under DATA_DIR). A service without an alembic.ini keeps no database (the
    verifier): nothing to do.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m hc_common.migrations SERVICE_ROOT", file=sys.stderr)
        return 64
    root = Path(args[0])
    if not (root / "alembic.ini").exists():
        print(f"{root.name}: keeps no database, nothing to migrate")
        return 0
    # The URL itself, not the service's Settings: the job needs none of its secrets.
    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL") or None
    upgrade_head(root, url)
    # No URL in the line: it may carry a password.
    print(f"{root.name}: database at the newest revision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
