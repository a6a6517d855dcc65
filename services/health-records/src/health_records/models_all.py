"""Every table of health-records, for `Base.metadata` (Alembic's target)."""

from health_records.db import Base, OutboxEvent
from health_records.person.models import CodeChange, Person

__all__ = ["Base", "CodeChange", "OutboxEvent", "Person"]
