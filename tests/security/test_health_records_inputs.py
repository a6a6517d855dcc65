"""health-records against hostile input, through the real process: control characters, other
scripts' digits, numbers for times, booleans for integers, wrong types, huge numbers, bodies over
the limit, too many rows, deep nesting and invalid UTF-8 each get a problem+json 4xx (a batch's
bad row is rejected alone), never a 5xx; and its OpenAPI document is whole (every `$ref`
resolves, each operation names its key and its error answers)."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from hc_common.testing import make_id_number
from tests.conftest import Api
from tests.security.support import refs, resolve

pytestmark = pytest.mark.e2e

LAB = {"Authorization": "Bearer dev-lab-key"}
SITE = {"Authorization": "Bearer dev-vaccination-site-key"}
AUTHORITY = {"Authorization": "Bearer dev-authority-key"}
SERVICE = {"Authorization": "Bearer dev-service-key"}
JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024
NAT = "/v1/nat-results/batch"
VACCINATIONS = "/v1/vaccinations/batch"

# A character of each kind the contract refuses in a line of text (C0, DEL, C1, ESC).
CONTROLS = ["\x00", "\x07", "\x1b", "\x7f", "\x9b"]
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def person(serial: int | None = None) -> str:
    born = date(1960, 1, 1) + timedelta(days=uuid.uuid4().int % 20_000)
    return make_id_number(born, serial=uuid.uuid4().int % 1000 if serial is None else serial)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nat_row(id_number: str, /, **fields: Any) -> dict[str, Any]:
    sample = datetime.now(UTC) - timedelta(hours=10)
    return {
        "report_id": uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "sample_time": iso(sample),
        "report_time": iso(sample + timedelta(hours=2)),
        "result": "negative",
        "institution": "南宁市第一人民医院",
        **fields,
    }


def vaccination_row(id_number: str, /, **fields: Any) -> dict[str, Any]:
    return {
        "record_id": uuid.uuid4().hex,
        "id_number": id_number,
        "name": "李秀华",
        "vaccine": "新冠病毒灭活疫苗",
        "manufacturer": "北京生物",
        "dose_number": 1,
        "administered_at": iso(datetime.now(UTC) - timedelta(days=30)),
        "site": "青秀区接种点",
        **fields,
    }


def problem(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """The answer is a problem+json 4xx (of `status` when given); its body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["code"]
    return body


def field_codes(body: dict[str, Any]) -> list[str]:
    return [error["code"] for error in body.get("errors", [])]


def batch(
    api: Api, rows: list[Any], *, path: str = NAT, key: str = "results"
) -> tuple[dict[str, Any], dict[int, str]]:
    """A batch that must be taken (200): its answer, and the code of each rejected row."""
    headers = LAB if path == NAT else SITE
    response = api.health_records.post(path, headers=headers, json={key: rows})
    assert response.status_code == 200, response.text[:500]
    body: dict[str, Any] = response.json()
    return body, {row["index"]: row["code"] for row in body["rejected"]}


def status_of(api: Api, id_number: str) -> dict[str, Any]:
    subject = api.health_records.post(
        "/internal/v1/subjects", headers=SERVICE, json={"id_number": id_number}
    )
    assert subject.status_code == 200, subject.text
    found = api.health_records.get(
        f"/internal/v1/subjects/{subject.json()['subject_id']}/status", headers=SERVICE
    )
    assert found.status_code == 200, found.text
    return dict(found.json())


# --- Text: control characters ----------------------------------------------------------------


def test_a_control_character_in_a_rows_text_rejects_that_row_alone(api: Api) -> None:
    good = nat_row(person())
    rows: list[Any] = [good]
    for field in ("name", "institution", "report_id"):
        rows += [nat_row(person(), **{field: f"李{c}华"}) for c in CONTROLS]
    rows.append(nat_row(person(), name="李\t华"))  # a tab is for descriptions only
    body, codes = batch(api, rows)
    assert body["accepted"] == 1
    assert codes == {i: "invalid_value" for i in range(1, len(rows))}
    assert status_of(api, good["id_number"])["nat"]["result"] == "negative"
    assert status_of(api, rows[1]["id_number"])["nat"] is None

    sites = [vaccination_row(person())]
    for field in ("name", "vaccine", "manufacturer", "site", "record_id"):
        sites += [vaccination_row(person(), **{field: f"疫苗{c}"}) for c in CONTROLS]
    body, codes = batch(api, sites, path=VACCINATIONS, key="records")
    assert body["accepted"] == 1
    assert codes == {i: "invalid_value" for i in range(1, len(sites))}


@pytest.mark.parametrize("control", CONTROLS)
def test_a_control_character_in_the_authoritys_reason_is_422(api: Api, control: str) -> None:
    code = {"id_number": person(), "color": "yellow", "reason": f"密接{control}"}
    body = problem(api.health_records.post("/v1/codes", headers=AUTHORITY, json=code), 422)
    assert body["code"] == "invalid_text" and field_codes(body) == ["invalid_text"]


def test_a_reason_may_span_lines(api: Api) -> None:
    code = {"id_number": person(), "color": "yellow", "reason": "密接\n\t轨迹重合"}
    response = api.health_records.post("/v1/codes", headers=AUTHORITY, json=code)
    assert response.status_code == 200, response.text
    assert response.json()["color_reason"] == "密接\n\t轨迹重合"


@pytest.mark.parametrize("control", CONTROLS)
def test_a_control_character_in_a_subjects_name_is_422(api: Api, control: str) -> None:
    response = api.health_records.post(
        "/internal/v1/subjects",
        headers=SERVICE,
        json={"id_number": person(), "name": f"李{control}华"},
    )
    assert problem(response, 422)["code"] == "invalid_text"


# --- Digits: ASCII only ------------------------------------------------------------------------


def test_a_full_width_id_number_is_invalid_id_number(api: Api) -> None:
    number = person()
    wide = number.translate(FULL_WIDTH)
    one_wide = number[:-2] + number[-2].translate(FULL_WIDTH) + number[-1]
    body, codes = batch(api, [nat_row(wide), nat_row(one_wide), nat_row(person())])
    assert body["accepted"] == 1 and codes == {0: "invalid_id_number", 1: "invalid_id_number"}
    assert number not in str(body) and wide not in str(body)
    body, codes = batch(api, [vaccination_row(wide)], path=VACCINATIONS, key="records")
    assert codes == {0: "invalid_id_number"}

    for id_number in (wide, one_wide):
        code = {"id_number": id_number, "color": "red", "reason": "x"}
        answer = problem(api.health_records.post("/v1/codes", headers=AUTHORITY, json=code), 422)
        assert answer["code"] == "invalid_id_number"
        subject = api.health_records.post(
            "/internal/v1/subjects", headers=SERVICE, json={"id_number": id_number}
        )
        assert problem(subject, 422)["code"] == "invalid_id_number"


def test_full_width_digits_in_a_time_reject_the_row(api: Api) -> None:
    at = nat_row(person())["sample_time"]
    _, codes = batch(api, [nat_row(person(), sample_time=at.translate(FULL_WIDTH))])
    assert codes == {0: "invalid_value"}


# --- Types: strict --------------------------------------------------------------------------


def test_numbers_are_not_times(api: Api) -> None:
    now = int(datetime.now(UTC).timestamp()) - 3600
    rows = [
        nat_row(person(), sample_time=now, report_time=now + 60),
        nat_row(person(), sample_time=0.5, report_time=1),
        nat_row(person(), sample_time=str(now), report_time=str(now + 60)),
        nat_row(person(), sample_time=True, report_time=True),
    ]
    body, codes = batch(api, rows)
    assert body["accepted"] == 0 and codes == dict.fromkeys(range(4), "invalid_value")
    sites = [vaccination_row(person(), administered_at=at) for at in (now, 0.5, str(now))]
    body, codes = batch(api, sites, path=VACCINATIONS, key="records")
    assert body["accepted"] == 0 and codes == dict.fromkeys(range(3), "invalid_value")


def test_booleans_floats_and_strings_are_not_dose_numbers(api: Api) -> None:
    rows = [
        vaccination_row(person(), dose_number=value)
        for value in (True, False, 1.0, "1", 10**30, -(10**30), 1e300, [1], {"n": 1}, None)
    ]
    body, codes = batch(api, rows, path=VACCINATIONS, key="records")
    assert body["accepted"] == 0 and codes == dict.fromkeys(range(len(rows)), "invalid_value")


@pytest.mark.parametrize(
    "row",
    [
        {"result": True},
        {"result": 1},
        {"result": ["negative"]},
        {"name": 12345},
        {"name": ["李秀华"]},
        {"name": {"$ne": ""}},
        {"report_id": 42},
        {"id_number": 110101199003074578},
        {"id_number": None},
        {"institution": False},
    ],
)
def test_a_field_of_the_wrong_type_rejects_the_row(api: Api, row: dict[str, Any]) -> None:
    body, codes = batch(api, [nat_row(person(), **row), nat_row(person())])
    assert body["accepted"] == 1 and codes[0] in {"invalid_value", "invalid_id_number"}
    assert list(codes) == [0]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        "results",
        {"results": None},
        {"results": "x"},
        {"results": {"0": {}}},
        {"rows": []},
    ],
)
def test_a_batch_of_the_wrong_shape_is_422(api: Api, payload: Any) -> None:
    response = api.health_records.post(NAT, headers=LAB, json=payload)
    assert problem(response, 422)["code"] == "validation_error"


@pytest.mark.parametrize(
    "change",
    [
        {"id_number": True},
        {"id_number": 110101199003074578},
        {"id_number": None},
        {"color": 1},
        {"color": "RED"},
        {"color": None},
        {"reason": 1},
        {"reason": ["x"]},
        {"reason": ""},
        {"reason": "x" * 501},
    ],
)
def test_a_code_of_the_wrong_type_is_422(api: Api, change: dict[str, Any]) -> None:
    body = {"id_number": person(), "color": "red", "reason": "x", **change}
    problem(api.health_records.post("/v1/codes", headers=AUTHORITY, json=body), 422)
    missing = {k: v for k, v in body.items() if k not in change}
    problem(api.health_records.post("/v1/codes", headers=AUTHORITY, json=missing), 422)


@pytest.mark.parametrize(
    "subject_ids",
    [
        "x",
        [1],
        [True],
        [None],
        ["not-an-id"],
        ["01hzy8k3m5n6p7q8r9s0t1v2w3".upper()],
        ["01hzy8k3m5n6p7q8r9s0t1v2w\x00"],
        ["../../v1/codes"],
        ["x" * 10_000],
    ],
)
def test_subject_ids_that_are_not_ids_are_422(api: Api, subject_ids: Any) -> None:
    response = api.health_records.post(
        "/internal/v1/statuses", headers=SERVICE, json={"subject_ids": subject_ids}
    )
    problem(response, 422)


@pytest.mark.parametrize(
    "subject_id",
    [
        "not-an-id",
        "a%00b",
        "01hzy8k3m5n6p7q8r9s0t1v2w%00",
        "%7F",
        "%E2%80%AE",
        "01HZY8K3M5N6P7Q8R9S0T1V2W3",
        "0" * 27,
        "x" * 5000,
    ],
)
def test_a_subject_id_that_is_not_an_id_is_404(api: Api, subject_id: str) -> None:
    response = api.health_records.get(f"/internal/v1/subjects/{subject_id}/status", headers=SERVICE)
    assert problem(response, 404)["code"] == "not_found"


def test_an_unknown_subject_of_the_right_form_is_404(api: Api) -> None:
    response = api.health_records.get(
        "/internal/v1/subjects/01hzy8k3m5n6p7q8r9s0t1v2w3/status", headers=SERVICE
    )
    assert problem(response, 404)["code"] == "not_found"


# --- Sizes, nesting, encoding -------------------------------------------------------------------


def test_huge_numbers_are_refused(api: Api) -> None:
    digits = "9" * 5000  # more digits than Python turns into an int by default
    for raw in (
        f'{{"results": [{{"dose_number": {digits}}}]}}',
        '{"results": [{"sample_time": 1e400}]}',
        '{"results": 1e400}',
    ):
        answer = api.health_records.post(NAT, headers={**LAB, **JSON}, content=raw)
        if answer.status_code == 200:  # a row refused alone
            assert answer.json()["accepted"] == 0
        else:
            problem(answer)
    for raw in (
        f'{{"id_number": {digits}, "color": "red", "reason": "x"}}',
        '{"id_number": 1e400, "color": "red", "reason": "x"}',
    ):
        problem(api.health_records.post("/v1/codes", headers={**AUTHORITY, **JSON}, content=raw))


def test_a_batch_over_16_mib_is_413(api: Api) -> None:
    raw = b'{"results": ["' + b"x" * (16 * MIB) + b'"]}'
    for path, headers in ((NAT, LAB), (VACCINATIONS, SITE)):
        response = api.health_records.post(path, headers={**headers, **JSON}, content=raw)
        assert problem(response, 413)["code"] == "payload_too_large"


def test_any_other_body_over_4_mib_is_413(api: Api) -> None:
    raw = b'{"color": "red", "reason": "' + b"x" * (4 * MIB) + b'"}'
    for path, headers in (
        ("/v1/codes", AUTHORITY),
        ("/internal/v1/subjects", SERVICE),
        ("/internal/v1/statuses", SERVICE),
    ):
        response = api.health_records.post(path, headers={**headers, **JSON}, content=raw)
        assert problem(response, 413)["code"] == "payload_too_large"


def test_10001_rows_are_refused_whole(api: Api) -> None:
    number = person()
    rows = [nat_row(number) for _ in range(10_001)]
    response = api.health_records.post(NAT, headers=LAB, json={"results": rows}, timeout=60)
    body = problem(response, 422)
    assert field_codes(body) == ["too_many_rows"]
    assert status_of(api, number)["nat"] is None  # nothing stored
    sites = [vaccination_row(number) for _ in range(10_001)]
    response = api.health_records.post(
        VACCINATIONS, headers=SITE, json={"records": sites}, timeout=60
    )
    assert field_codes(problem(response, 422)) == ["too_many_rows"]
    assert status_of(api, number)["vaccination"] is None


@pytest.mark.parametrize("depth", [1_100, 100_000])
def test_deeply_nested_json_is_refused(api: Api, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for path, headers, raw in (
        (NAT, LAB, f'{{"results": {nested}}}'),
        (NAT, LAB, f'{{"results": [{{"name": {nested}}}]}}'),
        (VACCINATIONS, SITE, f'{{"records": {nested}}}'),
        ("/v1/codes", AUTHORITY, f'{{"id_number": {nested}, "color": "red", "reason": "x"}}'),
        ("/internal/v1/statuses", SERVICE, f'{{"subject_ids": {nested}}}'),
    ):
        response = api.health_records.post(path, headers={**headers, **JSON}, content=raw)
        problem(response)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"results": [{"name": "\xff\xfe"}]}',
        b'{"results": [{"name": "\xed\xa0\x80"}]}',  # an encoded surrogate
        b'{"results": [{"name": "\\ud800"}]}',  # a lone surrogate, escaped
        b'{"results": [{"name": "\xc0\x80"}]}',  # an overlong NUL
        b"\xef\xbb\xbf\xff",
        b'{"results": [',
        b"",
    ],
)
def test_a_body_that_is_not_utf8_json_is_refused(api: Api, raw: bytes) -> None:
    problem(api.health_records.post(NAT, headers={**LAB, **JSON}, content=raw), 422)
    problem(api.health_records.post(VACCINATIONS, headers={**SITE, **JSON}, content=raw), 422)
    code = raw.replace(b'"results"', b'"reason"')
    problem(api.health_records.post("/v1/codes", headers={**AUTHORITY, **JSON}, content=code))


def test_bad_rows_of_every_kind_leave_the_good_ones(api: Api) -> None:
    """The batch endpoints still reject bad rows one by one, with hostile rows among them."""
    good = [nat_row(person()) for _ in range(3)]
    hostile: list[Any] = [
        nat_row(person(), name="李\x00华"),
        nat_row(person().translate(FULL_WIDTH)),
        nat_row(person(), sample_time=1_700_000_000),
        nat_row(person(), result=True),
        "\x00",
        None,
        [nat_row(person())],
        {"$where": "1"},
        nat_row(person(), name="名" * 10_000),
    ]
    body, codes = batch(api, [good[0], *hostile[:5], good[1], *hostile[5:], good[2]])
    assert body["accepted"] == 3 and body["duplicates"] == 0
    assert sorted(codes) == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert codes[2] == "invalid_id_number"
    for row in good:
        assert status_of(api, row["id_number"])["nat"]["result"] == "negative"


# --- The OpenAPI document -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(api: Api) -> dict[str, Any]:
    response = api.health_records.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_every_ref_of_the_openapi_document_resolves(openapi: dict[str, Any]) -> None:
    found = refs(openapi)
    assert "#/components/schemas/NatResultIn" in found
    assert "#/components/schemas/VaccinationIn" in found
    for ref in found:
        resolve(openapi, ref)
    # No schema holds definitions of its own that a `$ref` of the document cannot reach.
    assert "$defs" not in str(openapi)


def test_the_openapi_document_is_valid(openapi: dict[str, Any]) -> None:
    import subprocess
    import sys

    # In a process of its own: the validator builds code with `ast`, and CPython 3.11 refuses
    # to ("AST constructor recursion depth mismatch") in a process whose recursion limit an
    # earlier test (Hypothesis) has moved.
    check = (
        "import json, sys; "
        "from schemathesis.specs.openapi.adapter import validators; "
        "validators.validate_v3(json.load(sys.stdin))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check],
        input=json.dumps(openapi),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_batch_bodies_are_documented_as_their_rows(openapi: dict[str, Any]) -> None:
    for path, key, row in (
        (NAT, "results", "NatResultIn"),
        (VACCINATIONS, "records", "VaccinationIn"),
    ):
        body = openapi["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        schema = body["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = resolve(openapi, schema["$ref"])
        items = schema["properties"][key]["items"]
        assert items == {"$ref": f"#/components/schemas/{row}"}
        assert schema["properties"][key]["maxItems"] == 10_000
    vaccination = openapi["components"]["schemas"]["VaccinationIn"]["properties"]
    assert vaccination["dose_number"]["type"] == "integer"
    assert vaccination["administered_at"]["format"] == "date-time"


KEYS = {
    ("post", NAT): "LabKey",
    ("post", VACCINATIONS): "VaccinationSiteKey",
    ("post", "/v1/codes"): "AuthorityKey",
    ("post", "/internal/v1/subjects"): "ServiceKey",
    ("get", "/internal/v1/subjects/{subject_id}/status"): "ServiceKey",
    ("post", "/internal/v1/statuses"): "ServiceKey",
}


def test_each_operation_names_its_key(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert set(schemes) == set(KEYS.values())
    for scheme in schemes.values():
        assert scheme["type"] == "http" and scheme["scheme"].lower() == "bearer"
    for (method, path), key in KEYS.items():
        assert openapi["paths"][path][method]["security"] == [{key: []}], (method, path)


ANSWERS = {
    ("post", NAT): {"401", "403", "413", "422"},
    ("post", VACCINATIONS): {"401", "403", "413", "422"},
    ("post", "/v1/codes"): {"401", "403", "413", "422"},
    ("post", "/internal/v1/subjects"): {"401", "413", "422"},
    ("get", "/internal/v1/subjects/{subject_id}/status"): {"401", "404"},
    ("post", "/internal/v1/statuses"): {"401", "413", "422"},
}


def test_each_operation_documents_its_error_answers(openapi: dict[str, Any]) -> None:
    for (method, path), statuses in ANSWERS.items():
        responses = openapi["paths"][path][method]["responses"]
        assert statuses <= set(responses), (method, path, statuses - set(responses))
        for status in statuses:
            content = responses[status]["content"]
            assert "application/problem+json" in content
            # hc_common.app.problem_responses states the Problem schema under application/json.
            schema = (content["application/problem+json"] or content["application/json"])["schema"]
            assert resolve(openapi, schema["$ref"])["required"]


def test_the_wrong_key_is_401_and_another_roles_key_403(api: Api) -> None:
    rows = {"results": [nat_row(person())]}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        problem(api.health_records.post(NAT, headers=headers, json=rows), 401)
    for headers in (SITE, AUTHORITY):
        problem(api.health_records.post(NAT, headers=headers, json=rows), 403)
    problem(api.health_records.post(NAT, headers=SERVICE, json=rows), 401)  # not a role's key
