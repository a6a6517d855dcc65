"""The property-based API fuzzer: Schemathesis over every operation of every service's OpenAPI
document (its live /openapi.json), against the real processes of the e2e stack, with real
tokens and real ids.

A failure is a defect of a service: a 5xx, an error answer that is not problem+json of the
contract's shape, an undocumented status code, or an answer that breaks its documented media
type or schema (or a declared security scheme that is not enforced). The run is derandomized
(the same requests every time) and bounded: Schemathesis' coverage cases plus
`FUZZ_MAX_EXAMPLES` generated examples per operation. Alone:
`.venv/bin/pytest tests/security/test_fuzz.py` (or `-m fuzz`); the summary (operations covered,
examples, answers per status, failures with their request and answer, wall time) is printed
at the end of the run.
"""

import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from hc_common.devstack import DEV_API_KEYS, Stack
from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api
from tests.journeys import AUTHORITY, apply_for, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

# Generated examples per operation, on top of the coverage cases (about 1,500 in all): 100
# make about 5,700 requests, two and a half minutes on two busy cores.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "100"))
# A safety valve for a slow or loaded machine, not the bound itself: once the run has taken
# this long, each operation still to come fails (and is named so in the summary), since an
# operation left unfuzzed is a gap, not a pass. A run here takes about 75 s.
BUDGET_SECONDS = float(os.environ.get("FUZZ_BUDGET_SECONDS", "200"))
SERVICE_KEY = "dev-service-key"

CHINESE = re.compile(r"[\u4e00-\u9fff]")
# Not JSON APIs (Prometheus text): their error answers need not be problem+json.
NOT_JSON_APIS = {"/metrics"}
# Operations fuzzed with more than their document says: (service, path) -> how.
CSV_EXPORT = ("venue-admin", "/v1/venues/{venue_id}/access-records")


@dataclass
class World:
    """What the fuzzer's requests can name for real: a signed-in user holding credentials and
    a venue with staff and gates, and a token for every security scheme. What a destructive
    operation acts on (revoke, reissue, remove a member, remove a device) is disposable, so the
    rest of the run keeps its credential, its staff and its gate."""

    credential_id: str
    revocable_credential_id: str
    reissuable_credential_id: str
    venue_id: str
    staff_id: str
    removable_staff_id: str
    device_id: str
    removable_device_id: str
    subject_id: str
    # body and query fields by name: ids, the QR of the credential, a phone, an ID number
    fields: dict[str, str]
    # security scheme -> bearer token
    tokens: dict[str, str]

    def path_ids(self, method: str, path: str) -> dict[str, str]:
        """Real values for the path parameters of one operation, by name."""
        ids = {
            "credential_id": self.credential_id,
            "venue_id": self.venue_id,
            "member_id": self.staff_id,
            "device_id": self.device_id,
            "subject_id": self.subject_id,
        }
        if method == "DELETE":
            ids["credential_id"] = self.revocable_credential_id
            ids["member_id"] = self.removable_staff_id
            ids["device_id"] = self.removable_device_id
        if path.endswith("/reissue"):
            ids["credential_id"] = self.reissuable_credential_id
        return ids

    def named_tokens(self, text: str) -> str:
        """`text` with each token written as its scheme's name, for the summary."""
        for scheme, token in self.tokens.items():
            text = text.replace(token, f"<{scheme}>")
        return text


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _add_staff(api: Api, admin: dict[str, str], venue_id: str) -> str:
    phone = make_phone()
    sent = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin, json={"phone": phone}
    )
    assert sent.status_code == 202, sent.text
    outbox = api.venue_admin.get("/dev/sms-outbox", params={"phone": phone}).json()
    member = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins",
        headers=admin,
        json={"phone": phone, "code": outbox["messages"][0]["code"]},
    )
    return str(_created(member)["user_id"])


def _add_device(api: Api, admin: dict[str, str], venue_id: str) -> dict[str, Any]:
    made = api.venue_admin.post(
        f"/v1/venues/{venue_id}/devices",
        headers=admin,
        json={"name": "北门1号闸机", "manufacturer": "海康", "model": "DS-K3B"},
    )
    return _created(made)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(api: Api, fuzz_report: Any) -> World:
    started = time.monotonic()
    user = sign_in(api.issuer, make_phone())
    holder_id_number = make_id_number(date(1950, 3, 1))
    main, revocable, reissuable = (
        _created(apply_for(api.issuer, user, id_number, "黄永华"))
        for id_number in (
            holder_id_number,
            make_id_number(date(1951, 4, 2)),
            make_id_number(date(2015, 5, 3)),
        )
    )
    venue_id = _created(
        api.venue_admin.post(
            "/v1/venues",
            headers=user,
            json={
                "name": "南宁市民中心",
                "category": "office_building",
                "address": "青秀区",
                "region_code": "450103",
            },
        )
    )["venue_id"]
    (admin,) = api.venue_admin.get(f"/v1/venues/{venue_id}/members", headers=user).json()["items"]
    device, removable_device = _add_device(api, user, venue_id), _add_device(api, user, venue_id)
    device_token = _created(
        api.venue_admin.post(
            "/v1/devices/token",
            json={"device_id": device["device_id"], "device_secret": device["device_secret"]},
        )
    )["access_token"]
    subject = _created(
        api.health_records.post(
            "/internal/v1/subjects",
            headers=_bearer(SERVICE_KEY),
            json={"id_number": holder_id_number},
        )
    )
    # Each key is the right one: with a wrong token the fuzzer would only ever see 401s.
    keys: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("/v1/nat-results/batch", DEV_API_KEYS["lab"], {"results": []}),
        ("/v1/vaccinations/batch", DEV_API_KEYS["vaccination_site"], {"records": []}),
        ("/v1/codes", DEV_API_KEYS["authority"], {}),
    )
    for path, key, body in keys:
        answer = api.health_records.post(path, headers=_bearer(key), json=body)
        assert answer.status_code not in (401, 403), (path, answer.text)
    # The gate's scans must find the device at the verifier, not race its arrival.
    gate = _bearer(device_token)
    assert poll(
        lambda: (
            api.verifier.post("/v1/gate/verify", headers=gate, json={"qr": main["qr"]}).status_code
            == 200
        ),
        timeout=10,
    )
    world = World(
        credential_id=main["credential_id"],
        revocable_credential_id=revocable["credential_id"],
        reissuable_credential_id=reissuable["credential_id"],
        venue_id=venue_id,
        staff_id=_add_staff(api, user, venue_id),
        removable_staff_id=_add_staff(api, user, venue_id),
        device_id=device["device_id"],
        removable_device_id=removable_device["device_id"],
        subject_id=subject["subject_id"],
        fields={
            "venue_id": venue_id,
            "credential_id": main["credential_id"],
            "qr": main["qr"],
            "user_id": admin["user_id"],
            "device_id": device["device_id"],
            "device_secret": device["device_secret"],
            # a number of the fuzzer's own: its codes run into the limits (429) at once
            "phone": make_phone(),
            "id_number": holder_id_number,
        },
        tokens={
            "UserToken": user["Authorization"].removeprefix("Bearer "),
            "DeviceToken": device_token,
            "ServiceKey": SERVICE_KEY,
            "LabKey": DEV_API_KEYS["lab"],
            "VaccinationSiteKey": DEV_API_KEYS["vaccination_site"],
            "AuthorityKey": AUTHORITY["Authorization"].removeprefix("Bearer "),
        },
    )
    fuzz_report.setup_seconds = time.monotonic() - started
    fuzz_report.settings = (
        f"per operation: Schemathesis' coverage cases + up to {MAX_EXAMPLES} generated examples "
        f"(derandomized, positive and negative); checks: {', '.join(CHECKS)}, problem_details"
    )
    return world


# Until a service declares the security scheme of an operation, the scheme is the one its path
# implies (alternatives: either is accepted).
FALLBACK_SCHEMES: dict[str, list[tuple[str, list[str]]]] = {
    "issuer": [
        (r"^/internal/", ["ServiceKey"]),
        (r"^/v1/review/", ["AuthorityKey"]),
        (r"^/v1/(family|appeals)", ["UserToken"]),
    ],
    "venue-admin": [
        (r"^/internal/", ["ServiceKey"]),
        (r"^/v1/venues", ["UserToken"]),
    ],
    "health-records": [
        (r"^/internal/", ["ServiceKey"]),
        (r"^/v1/nat-results/", ["LabKey"]),
        (r"^/v1/vaccinations/", ["VaccinationSiteKey"]),
        (r"^/v1/(codes|tracing)", ["AuthorityKey"]),
    ],
    "verifier": [
        (r"^/v1/gate/", ["DeviceToken"]),
        (r"^/v1/verify", ["UserToken", "DeviceToken"]),
    ],
}


def _pick(key: object, options: list[Any]) -> Any:
    """One of `options`, the same one every time for the same generated value (a crc, not
    `hash`, so that a derandomized run sends the same requests in every process)."""
    return options[zlib.crc32(repr(key).encode()) % len(options)]


def schemes_for(case: Case, service: str) -> list[str]:
    """The security schemes an operation takes (alternatives): those its document declares,
    else those its path implies."""
    definition = case.operation.definition.raw
    raw = case.operation.schema.raw_schema
    if "security" in definition or "security" in raw:
        requirements = definition.get("security", raw.get("security")) or []
        return [name for requirement in requirements for name in requirement]
    path = case.operation.path
    return next(
        (names for pattern, names in FALLBACK_SCHEMES[service] if re.match(pattern, path)), []
    )


def auth_provider(service: str, world: World) -> type:
    """Schemathesis' auth provider for one service: the real token of the scheme each
    operation takes, in the header its scheme names (a declared `apiKey` scheme's header,
    else `Authorization: Bearer`). Cases that Schemathesis generates without their
    credentials on purpose are left alone."""

    class SchemeAuth:
        def get(self, case: Case, ctx: object) -> tuple[str, str] | None:
            schemes = schemes_for(case, service)
            if not schemes:
                return None
            unknown = [name for name in schemes if name not in world.tokens]
            assert not unknown, f"the fuzzer has no credential for the security schemes {unknown}"
            scheme = _pick((case.path_parameters, case.query, case.body), schemes)
            token = world.tokens[scheme]
            declared = (
                case.operation.schema.raw_schema.get("components", {})
                .get("securitySchemes", {})
                .get(scheme, {})
            )
            if declared.get("type") == "apiKey" and declared.get("in") == "header":
                return declared["name"], token
            return "Authorization", f"Bearer {token}"

        def set(self, case: Case, data: tuple[str, str], ctx: object) -> None:
            name, value = data
            case.headers[name] = value

    return SchemeAuth


def _realify(value: Any, fields: dict[str, str]) -> None:
    """In place, at any depth: half of the string values of fields the world knows (by a crc
    of the generated value) become real ones."""
    if isinstance(value, list):
        for item in value:
            _realify(item, fields)
    elif isinstance(value, dict):
        for name, item in list(value.items()):
            if name in fields and isinstance(item, str) and _pick(item, [True, False]):
                value[name] = fields[name]
            else:
                _realify(item, fields)


def use_the_world(case: Case, service: str, world: World) -> None:
    """Real ids in half of the paths, queries and bodies, so that operations get past "not
    found" into their rules; the CSV export for half of the access-record queries."""
    real = world.path_ids(case.operation.method.upper(), case.operation.path)
    for name, value in list((case.path_parameters or {}).items()):
        if name in real and isinstance(value, str) and _pick(value, [True, False]):
            case.path_parameters[name] = real[name]
    _realify(case.query, world.fields)
    _realify(case.body, world.fields)
    if (service, case.operation.path) == CSV_EXPORT and _pick(case.query, [True, False]):
        case.headers["Accept"] = "text/csv"


def problem_details(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error answer of a JSON API is an RFC 9457 problem of the contract's shape, its
    title in words (Chinese, as no request here asks for English)."""
    if response.status_code < 400 or case.operation.path in NOT_JSON_APIS:
        return None
    content_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered with Content-Type {content_type!r}, "
        "not application/problem+json"
    )
    body = response.json()
    assert isinstance(body, dict), f"problem details that are not an object: {body!r}"
    missing = {"type", "title", "status", "detail", "code"} - set(body)
    assert not missing, f"problem details without {sorted(missing)}: {body!r}"
    assert body["status"] == response.status_code, f"`status` {body['status']}: {body!r}"
    english = str(response.request.headers.get("accept-language", "")).startswith("en")
    assert english or CHINESE.search(str(body["title"])), f"a title not in words: {body!r}"
    if body["code"] == "validation_error" or "errors" in body:
        errors = body.get("errors")
        assert isinstance(errors, list) and all(
            isinstance(e, dict) and {"field", "code", "message"} <= set(e) for e in errors
        ), f"a validation error without its `errors`: {body!r}"
    return True


CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "ignored_auth",
)


def load_schema(stack: Stack, service: str, world: World) -> schemathesis.BaseSchema:
    base_url = stack.url(service)
    config = schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "request-timeout": 10,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "auth": {"auto-signup": False},
            # The tokens are the test's own; the summary writes them as their scheme's name.
            "output": {"sanitization": {"enabled": False}},
            "suppress-health-check": ["all"],
        }
    )
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    schema.auth(refresh_interval=None, retry_on=[])(auth_provider(service, world))
    return schema


def fuzz(case: Case, service: str, world: World, report: Any) -> None:
    operation = f"{service} {case.operation.method.upper()} {case.operation.path}"
    if time.monotonic() - report.started > BUDGET_SECONDS:
        report.notes.setdefault(
            operation, f"not fuzzed: the {BUDGET_SECONDS:.0f} s budget was spent"
        )
        # An operation left unfuzzed is a gap in the suite, not a pass.
        pytest.fail(f"the fuzzer's time budget ({BUDGET_SECONDS:.0f} s) ran out before {operation}")
    use_the_world(case, service, world)
    response = None
    try:
        response = case.call()
        report.examples[operation] += 1
        report.statuses.setdefault(operation, Counter())[response.status_code] += 1
        case.validate_response(response, additional_checks=[problem_details])
    except (FailureGroup, Exception) as exc:
        # A FailureGroup is a BaseExceptionGroup: `except Exception` alone would miss it.
        failures = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
        answer = "none" if response is None else f"{response.status_code} {response.text}"
        for failure in failures:
            # the check's own message, without pytest's rewriting of the assertion
            message = getattr(failure, "message", str(failure)).split("\nassert ")[0].strip()
            report.record_failure(
                operation,
                getattr(failure, "title", type(failure).__name__),
                world.named_tokens(
                    f"{message}\nrequest: {case.as_curl_command()}\nanswer: {answer[:500]}"
                ),
            )
        raise
    finally:
        report.finished = time.monotonic()


def _schema_fixture(service: str) -> Callable[..., Iterator[schemathesis.BaseSchema]]:
    def fixture(stack: Stack, world: World, fuzz_report: Any) -> Iterator[schemathesis.BaseSchema]:
        schema = load_schema(stack, service, world)
        operations = []
        for result in schema.get_all_operations():
            if isinstance(result, Ok):
                operation = result.ok()
                operations.append(f"{service} {operation.method.upper()} {operation.path}")
            else:  # Schemathesis fails it as a subtest of its own; the summary names it too
                error = result.err()
                name = f"{service} {(error.method or '?').upper()} {error.path}"
                operations.append(name)
                fuzz_report.notes[name] = f"its definition cannot be fuzzed: {error}"
        fuzz_report.operations[service] = operations
        for path in NOT_JSON_APIS:
            for method in ("GET",):
                if f"{service} {method} {path}" in operations:
                    fuzz_report.notes[f"{service} {method} {path}"] = (
                        "not a JSON API: error answers not held to problem+json"
                    )
        if service == CSV_EXPORT[0]:
            fuzz_report.notes[f"{service} GET {CSV_EXPORT[1]}"] = (
                "half of the examples ask for the CSV export (Accept: text/csv)"
            )
        yield schema

    return fixture


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32's lazy schemas read `node._nodeid`, which pytest 9.2 no longer has
    (the node id lives in `_id`): give the node the attribute back; nothing else reads it."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


issuer_schema = pytest.fixture(scope="module")(_schema_fixture("issuer"))
venue_admin_schema = pytest.fixture(scope="module")(_schema_fixture("venue-admin"))
health_records_schema = pytest.fixture(scope="module")(_schema_fixture("health-records"))
verifier_schema = pytest.fixture(scope="module")(_schema_fixture("verifier"))


@schemathesis.pytest.from_fixture("issuer_schema").parametrize()
def test_issuer(case: Case, world: World, fuzz_report: Any) -> None:
    fuzz(case, "issuer", world, fuzz_report)


@schemathesis.pytest.from_fixture("venue_admin_schema").parametrize()
def test_venue_admin(case: Case, world: World, fuzz_report: Any) -> None:
    fuzz(case, "venue-admin", world, fuzz_report)


@schemathesis.pytest.from_fixture("health_records_schema").parametrize()
def test_health_records(case: Case, world: World, fuzz_report: Any) -> None:
    fuzz(case, "health-records", world, fuzz_report)


@schemathesis.pytest.from_fixture("verifier_schema").parametrize()
def test_verifier(case: Case, world: World, fuzz_report: Any) -> None:
    fuzz(case, "verifier", world, fuzz_report)
