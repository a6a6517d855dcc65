"""Every table of health-records, for `Base.metadata` (Alembic's target)."""

from health_records.db import Base, OutboxEvent
from health_records.nat.models import NatResult
from health_records.person.models import CodeChange, Person
from health_records.tracing.models import TracingRequest
from health_records.vaccination.models import VaccinationRecord

__all__ = [
    "Base",
    "CodeChange",
    "NatResult",
    "OutboxEvent",
    "Person",
    "TracingRequest",
    "VaccinationRecord",
]
