"""The async database layer: engine per service, a request-scoped session, portable column types.

`DATABASE_STATEMENT_CACHE_SIZE` (unprefixed, read by every service's engine): the size of the
prepared-statement caches on each PostgreSQL connection (asyncpg's and SQLAlchemy's); unset,
the drivers' defaults. `0` behind PgBouncer in transaction mode, where one transaction's
server connection is not the next one's: statements are then prepared under unique names and
never reused from a cache.
"""

import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (else SQLite, the local default)."""
    return session.get_bind().dialect.name == "postgresql"


def normalise_url(url: str) -> str:
    """Accept the usual spellings (`postgres://`, `postgresql://`) and pick the async drivers."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    statement_cache_size = os.environ.get("DATABASE_STATEMENT_CACHE_SIZE", "").strip()
    if statement_cache_size and parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {
            **statement_cache_args(int(statement_cache_size)),
            **kwargs.get("connect_args", {}),
        }
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def statement_cache_args(size: int) -> dict[str, Any]:
    """asyncpg's connect arguments for statement caches of `size` (0: none, as PgBouncer's
    transaction mode needs, with names of their own so that two never clash on a server)."""
    if size < 0:
        raise ValueError("DATABASE_STATEMENT_CACHE_SIZE must be 0 or more")
    args: dict[str, Any] = {
        "statement_cache_size": size,  # asyncpg's own
        "prepared_statement_cache_size": size,  # SQLAlchemy's, over asyncpg's
    }
    if size == 0:
        args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid.uuid4().hex}__"
    return args


# `session.info` key of a transaction that wrote outbox rows (hc_common.events.outbox).
EVENTS_STAGED = "hc_events_staged"


class Database:
    """An engine and its session factory, made in a service's lifespan.

    Whoever commits a session (the request's unit of work, a background job), the callbacks
    in `on_events_committed` run after a commit whose transaction staged events: that is how
    the outbox relay hears of new rows at once, with no router or service having to tell it.
    """

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self.on_events_committed: list[Callable[[], None]] = []
        # A Session class of this database's own, so that its listener sees only its sessions.
        session_class = type("DatabaseSession", (Session,), {})
        event.listen(session_class, "after_commit", self._after_commit)
        event.listen(session_class, "after_rollback", self._after_rollback)
        self.sessionmaker = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=session_class
        )

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(EVENTS_STAGED, False):
            for callback in self.on_events_committed:
                callback()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(EVENTS_STAGED, None)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def session(self) -> AsyncIterator[AsyncSession]:
        """Request-scoped session: commits when the handler returns, rolls back when it raises."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps no zone, PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
