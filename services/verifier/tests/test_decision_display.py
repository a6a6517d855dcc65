"""The decision rules and the gate's lines, as the contract's scan section words them (no I/O)."""

from datetime import UTC, date, datetime, timedelta

import pytest

from verifier.scan.decision import (
    REASON_ORDER,
    Decision,
    HealthStatus,
    Rule,
    decide,
    health_reasons,
    hours_since,
)
from verifier.scan.display import gate_lines
from verifier.scan.service import ScanResult
from verifier.view.state import LRU, CredentialInfo

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def status(
    color: str = "green", nat: str | None = None, hours: float = 0, doses: int = 0, version: int = 1
) -> HealthStatus:
    return HealthStatus(
        "s1",
        color,
        nat,
        NOW - timedelta(hours=hours) if nat else None,
        doses,
        NOW - timedelta(days=30) if doses else None,
        version,
    )


def reasons(st: HealthStatus, rule: Rule) -> Decision:
    return decide(health_reasons(st, rule, NOW))


def test_green_passes_by_default_rule() -> None:
    assert reasons(status(), Rule()) == Decision("pass", [])


@pytest.mark.parametrize("color", ["yellow", "red"])
def test_colour_not_allowed_denies_and_allowed_passes(color: str) -> None:
    assert reasons(status(color), Rule()) == Decision("deny", [f"color_{color}"])
    assert reasons(status(color), Rule(frozenset({"green", color}))) == Decision("pass", [])


def test_nat_missing_too_old_and_fresh() -> None:
    rule = Rule(max_nat_age_hours=48)
    assert reasons(status(), rule).reasons == ["nat_missing"]
    assert reasons(status(nat="negative", hours=48.01), rule).reasons == ["nat_too_old"]
    assert reasons(status(nat="negative", hours=47.99), rule) == Decision("pass", [])


def test_positive_nat_denies_whatever_the_rule() -> None:
    lenient = Rule(frozenset({"green", "yellow", "red"}))
    assert reasons(status("red", nat="positive"), lenient).reasons == ["nat_positive"]
    assert reasons(status("red", nat="positive"), Rule()).reasons == ["color_red", "nat_positive"]


def test_vaccination_insufficient() -> None:
    rule = Rule(min_vaccine_doses=3)
    assert reasons(status(doses=2), rule).reasons == ["vaccination_insufficient"]
    assert reasons(status(doses=3), rule).decision == "pass"


def test_every_failing_condition_in_contract_order() -> None:
    rule = Rule(max_nat_age_hours=24, min_vaccine_doses=2)
    got = reasons(status("yellow", nat="negative", hours=30, doses=1), rule)
    assert got == Decision("deny", ["color_yellow", "nat_too_old", "vaccination_insufficient"])
    assert decide(["credential_expired", "credential_revoked"]).reasons == [
        "credential_revoked",
        "credential_expired",
    ]
    assert list(REASON_ORDER)[-1] == "status_unavailable"


def test_status_unavailable_alone_is_manual_check_never_pass() -> None:
    assert decide(["status_unavailable"]) == Decision("manual_check", ["status_unavailable"])
    assert decide(["credential_invalid"]).decision == "deny"


def test_hours_since_sample_rounds_down() -> None:
    assert hours_since(NOW - timedelta(hours=20, minutes=59, seconds=59), NOW) == 20
    assert hours_since(NOW - timedelta(hours=21), NOW) == 21
    assert hours_since(NOW + timedelta(minutes=5), NOW) == 0


def result(decision: Decision, st: HealthStatus | None, with_credential: bool = True) -> ScanResult:
    credential = CredentialInfo(
        "c1",
        "s1",
        1,
        "active",
        "李*华",
        "450103********1234",
        date(1950, 3, 8),
        NOW + timedelta(days=300),
    )
    return ScanResult(decision, credential if with_credential else None, st, False, "r1", NOW)


def test_gate_lines_chinese_and_english() -> None:
    st = status(nat="negative", hours=20.5)
    assert gate_lines(result(Decision("pass"), st), english=False) == [
        "李*华",
        "绿码",
        "核酸阴性 20小时",
        "通行",
    ]
    assert gate_lines(result(Decision("pass"), st), english=True) == [
        "李*华",
        "Green code",
        "NAT negative 20h",
        "Pass",
    ]


def test_gate_lines_of_a_denial_and_an_invalid_credential() -> None:
    red = gate_lines(result(Decision("deny", ["color_red"]), status("red")), english=False)
    assert red[0] == "李*华" and "红码" in red and red[-1] == "禁止通行"
    invalid = gate_lines(result(Decision("deny", ["credential_invalid"]), None, False), True)
    assert invalid == ["Invalid credential", "No entry"]
    manual = gate_lines(result(Decision("manual_check", ["status_unavailable"]), None), False)
    assert manual == ["李*华", "健康状态暂不可查", "人工核验"]


def test_status_cache_is_bounded() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.get("a")
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and len(lru) == 2
