"""The decision of a scan, from a checked credential, a live status and the venue's rule.

Pure functions: no I/O, so every rule of the contract is tested directly."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hc_common.events.schemas import Color

DecisionKind = Literal["pass", "deny", "manual_check"]

# The contract's order: `reasons` lists every failing condition in this order.
REASON_ORDER = (
    "color_yellow",
    "color_red",
    "nat_missing",
    "nat_too_old",
    "nat_positive",
    "vaccination_insufficient",
    "credential_revoked",
    "credential_expired",
    "credential_invalid",
    "status_unavailable",
)


@dataclass(frozen=True, slots=True)
class Rule:
    allowed_colors: frozenset[str] = frozenset({"green"})
    max_nat_age_hours: int | None = None
    min_vaccine_doses: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class HealthStatus:
    subject_id: str
    color: Color
    nat_result: str | None
    nat_sample_time: datetime | None
    vaccine_doses: int
    last_dose_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class Decision:
    decision: DecisionKind
    reasons: list[str] = field(default_factory=list)


def hours_since(sample_time: datetime, now: datetime) -> int:
    """Whole hours, rounded down (never negative)."""
    return max(0, int((now - sample_time).total_seconds() // 3600))


def health_reasons(status: HealthStatus, rule: Rule, now: datetime) -> list[str]:
    reasons = []
    if status.color == "yellow" and "yellow" not in rule.allowed_colors:
        reasons.append("color_yellow")
    if status.color == "red" and "red" not in rule.allowed_colors:
        reasons.append("color_red")
    if rule.max_nat_age_hours is not None:
        if status.nat_sample_time is None:
            reasons.append("nat_missing")
        elif (now - status.nat_sample_time).total_seconds() > rule.max_nat_age_hours * 3600:
            reasons.append("nat_too_old")
    if status.nat_result == "positive":
        reasons.append("nat_positive")
    if status.vaccine_doses < rule.min_vaccine_doses:
        reasons.append("vaccination_insufficient")
    return reasons


def decide(reasons: list[str]) -> Decision:
    if not reasons:
        return Decision("pass", [])
    ordered = sorted(set(reasons), key=REASON_ORDER.index)
    if ordered == ["status_unavailable"]:
        return Decision("manual_check", ordered)
    return Decision("deny", [r for r in ordered if r != "status_unavailable"] or ordered)
