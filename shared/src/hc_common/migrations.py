"""Alembic per service: the env.py body every service shares, and upgrade-to-head for start-up."""

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from hc_common.db import make_engine, normalise_url


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

    async def run_async() -> None:
        engine = make_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    existing = config.attributes.get("connection")
    if existing is not None:
        do_run(existing)
    else:
        asyncio.run(run_async())


def alembic_config(service_root: Path, url: str) -> Config:
    cfg = Config(str(service_root / "alembic.ini"))
    cfg.set_main_option("script_location", str(service_root / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_head(service_root: Path, url: str) -> None:
    """Bring the service's database to the newest revision (blocking; run before serving)."""
    command.upgrade(alembic_config(service_root, url), "head")
