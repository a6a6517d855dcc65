"""Alembic environment of the venue-admin service."""

from alembic import context

from hc_common.migrations import run_env
from venue_admin.config import Settings
from venue_admin.models_all import Base

if not context.config.get_main_option("sqlalchemy.url"):
    context.config.set_main_option(
        "sqlalchemy.url", Settings().effective_database_url.replace("%", "%%")
    )

run_env(Base.metadata)
