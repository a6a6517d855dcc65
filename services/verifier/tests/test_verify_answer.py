"""`POST /v1/verify`'s body (`verify_answer`): its `lines` are the gate's, in either language,
and the body has the documented shape (no I/O)."""

from datetime import UTC, date, datetime, timedelta

from verifier.scan.decision import Decision, HealthStatus
from verifier.scan.display import gate_lines
from verifier.scan.router import verify_answer
from verifier.scan.schemas import VerifyResponse
from verifier.scan.service import ScanResult
from verifier.view.state import CredentialInfo

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
CREDENTIAL = CredentialInfo(
    "c1", "s1", 1, "active", "李*华", "450103********1234", date(1950, 3, 8), NOW
)


def scan(decision: Decision, color: str | None = "green", checked: bool = True) -> ScanResult:
    status = (
        HealthStatus("s1", color, "negative", NOW - timedelta(hours=20.5), 0, None, 1)
        if color
        else None
    )
    return ScanResult(decision, CREDENTIAL if checked else None, status, False, "r1", NOW)


def test_lines_of_a_pass_in_chinese_by_default_and_in_english() -> None:
    result = scan(Decision("pass"))
    assert verify_answer(result)["lines"] == ["李*华", "绿码", "核酸阴性 20小时", "通行"]
    assert verify_answer(result, english=True)["lines"] == [
        "李*华",
        "Green code",
        "NAT negative 20h",
        "Pass",
    ]


def test_lines_are_the_gates_for_every_decision() -> None:
    results = [
        scan(Decision("pass")),
        scan(Decision("deny", ["color_red"]), "red"),
        scan(Decision("deny", ["credential_invalid"]), None, checked=False),
        scan(Decision("manual_check", ["status_unavailable"]), None),
    ]
    for result in results:
        for english in (False, True):
            assert verify_answer(result, english)["lines"] == gate_lines(result, english)


def test_a_denial_says_the_reason_and_the_verdict_last() -> None:
    lines = verify_answer(scan(Decision("deny", ["color_red"]), "red"))["lines"]
    assert lines[0] == "李*华" and "红码" in lines and lines[-1] == "禁止通行"
    english = verify_answer(scan(Decision("deny", ["color_red"]), "red"), True)["lines"]
    assert "Red code" in english and english[-1] == "No entry"


def test_manual_check_says_so_once_and_last() -> None:
    result = scan(Decision("manual_check", ["status_unavailable"]), None)
    assert verify_answer(result)["lines"] == ["李*华", "健康状态暂不可查", "人工核验"]
    assert verify_answer(result, True)["lines"] == [
        "李*华",
        "Health status unavailable",
        "Manual check",
    ]


def test_the_body_is_a_verify_response() -> None:
    for result in (scan(Decision("pass")), scan(Decision("deny", ["credential_invalid"]), None)):
        body = verify_answer(result)
        assert VerifyResponse.model_validate(body).model_dump(mode="json").keys() == body.keys()
