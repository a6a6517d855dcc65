"""INSERT ... ON CONFLICT DO NOTHING for the backend in use (PostgreSQL or SQLite)."""

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Table) -> Any:
    """An INSERT that skips rows whose unique key exists already (a bulk, idempotent insert)."""
    name = session.get_bind().dialect.name
    module = postgresql if name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()
