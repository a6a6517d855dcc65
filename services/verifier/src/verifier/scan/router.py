"""The scan over HTTP: `POST /v1/verify` for staff and gates, `POST /v1/gate/verify` for a
gate's display.

Each is answered by one function of the request's authorization, language and body
(`answer_verify`, `answer_gate`), reached two ways: as a direct route of the app
(`DIRECT_ROUTES`, hc_common.app `ServiceApp`: ahead of the middleware stack and FastAPI's
routing, which together cost several times the scan), and as the documented FastAPI route
below, which answers what the direct route leaves to the stack (browsers' CORS requests)."""

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from hc_common.app import DirectEndpoint, ServiceApp, header_text, problem_responses
from hc_common.clock import to_utc
from hc_common.deps import bearer_token
from hc_common.errors import Forbidden
from hc_common.i18n import wants_english
from verifier.scan.decision import hours_since
from verifier.scan.display import gate_lines
from verifier.scan.schemas import (
    ID_MAX_LENGTH,
    QR_MAX_LENGTH,
    GateResponse,
    GateVerifyRequest,
    VerifyRequest,
    VerifyResponse,
)
from verifier.scan.service import ScanResult, ScanService

router = APIRouter(tags=["scan"])

# The credentials a scan takes, as OpenAPI security schemes. The routes read the header
# themselves (see `_scan`), so main.py adds these to the document's components.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "UserToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from the issuer's sign-in (`POST /v1/auth/token`), "
        "of a member holding `reverse_scan` at the venue.",
    },
    "DeviceToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A gate device's token from venue-admin (`POST /v1/devices/token`).",
    },
}


async def _scan(
    service: ScanService,
    authorization: str | None,
    raw: bytes,
    model: type[VerifyRequest] | type[GateVerifyRequest],
    *,
    device_only: bool = False,
) -> ScanResult:
    """Scanner first (401, then 403 for a user at a gate's endpoint, before 422, as with a
    dependency), then the body, then the scan.

    No FastAPI dependencies or body parameter here: their resolution cost as much as the
    whole scan. The body's schema and the security are given to the OpenAPI description by
    hand below."""
    scanner = await service.scanner(bearer_token(authorization))
    if device_only and scanner.kind != "device":
        raise Forbidden(
            detail="仅闸机可调用此接口", detail_en="Only a gate device's token is accepted here"
        )
    qr, venue_id = parse_body(model, raw)
    return await service.scan(scanner, qr, venue_id)


def parse_body(
    model: type[VerifyRequest] | type[GateVerifyRequest], raw: bytes
) -> tuple[str, str | None]:
    """The QR text and the venue id (None for a gate's body) of a scan's body, or 422.

    A plain JSON object whose members have the model's types and lengths is taken from
    orjson's parse (a third of the model's cost); anything else goes to the model, which
    answers it as always (the same values, or its validation errors)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if type(data) is dict:
        qr = data.get("qr")
        venue_id = data.get("venue_id") if model is VerifyRequest else None
        if (
            type(qr) is str
            and 0 < len(qr) <= QR_MAX_LENGTH
            and (venue_id is None or (type(venue_id) is str and len(venue_id) <= ID_MAX_LENGTH))
        ):
            return qr, venue_id
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
    return body.qr, getattr(body, "venue_id", None)


def _operation(model: type[BaseModel], *schemes: str) -> dict[str, Any]:
    """The request body and the security of an operation whose route reads both itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "security": [{scheme: []} for scheme in schemes],
    }


# Times as the contract writes them (`rfc3339`: whole seconds, `Z`), written by orjson itself
# from UTC datetimes (`to_utc`): the scan's answer formats three of them.
_TIMES = orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS


def answer_json(body: dict[str, Any]) -> bytes:
    """The JSON of an answer built by `verify_answer` (its times as `rfc3339` writes them)."""
    return orjson.dumps(body, option=_TIMES)


def verify_answer(result: ScanResult, english: bool = False) -> dict[str, Any]:
    """The body of `VerifyResponse` as a plain dict, its times as UTC datetimes: built and
    serialised once, with orjson (`answer_json`; the scan is the hot path; the model
    documents the shape in the OpenAPI description). `lines` are the gate's (`gate_lines`),
    so that a staff page and a gate say the same."""
    credential, status = result.credential, result.status
    holder = health = credential_out = None
    if credential is not None:
        holder = {
            "masked_name": credential.masked_name,
            "masked_id_number": credential.masked_id_number,
            "age": result.age or 0,
        }
        credential_out = {
            "credential_id": credential.credential_id,
            "version": credential.version,
            "expires_at": to_utc(credential.expires_at),
        }
    if status is not None:
        nat = None
        if status.nat_result and status.nat_sample_time:
            nat = {
                "result": status.nat_result,
                "sample_time": to_utc(status.nat_sample_time),
                "hours_since_sample": hours_since(status.nat_sample_time, result.checked_at),
            }
        vaccination = (
            {
                "doses": status.vaccine_doses,
                "last_dose_at": to_utc(status.last_dose_at) if status.last_dose_at else None,
            }
            if status.vaccine_doses
            else None
        )
        health = {"color": status.color, "nat": nat, "vaccination": vaccination}
    return {
        "decision": result.decision.decision,
        "reasons": result.decision.reasons,
        "holder": holder,
        "health": health,
        "credential": credential_out,
        "record_id": result.record_id,
        "checked_at": to_utc(result.checked_at),
        "stale": result.stale,
        "lines": gate_lines(result, english),
    }


async def answer_verify(
    service: ScanService, authorization: str | None, language: str | None, raw: bytes
) -> bytes:
    """`POST /v1/verify`: the JSON of the answer, or a request fault raised."""
    result = await _scan(service, authorization, raw, VerifyRequest)
    return answer_json(verify_answer(result, wants_english(language)))


async def answer_gate(
    service: ScanService, authorization: str | None, language: str | None, raw: bytes
) -> bytes:
    """`POST /v1/gate/verify`: the JSON of the answer, or a request fault raised."""
    result = await _scan(service, authorization, raw, GateVerifyRequest, device_only=True)
    return orjson.dumps(
        {
            "open": result.decision.decision == "pass",
            "decision": result.decision.decision,
            "color": result.status.color if result.status else None,
            "lines": gate_lines(result, wants_english(language)),
            "record_id": result.record_id,
        }
    )


async def _answer(request: Request, answer: Any) -> Response:
    service: ScanService = request.app.state.scan_service
    headers = request.headers
    raw = await request.body()
    body = await answer(service, headers.get("authorization"), headers.get("accept-language"), raw)
    return Response(body, media_type="application/json")


@router.post(
    "/v1/verify",
    response_model=VerifyResponse,
    responses=problem_responses(503),
    openapi_extra=_operation(VerifyRequest, "UserToken", "DeviceToken"),
    summary="Scan a credential at a venue (reverse-scan staff or a gate)",
    description="Request faults are errors (401 `unauthorized`, 403 `forbidden`, 404 "
    "unknown venue, 422); everything about the holder is a decision. "
    "`holder` and `health` are null when the credential fails its check "
    "(revoked, expired, invalid). With health-records unreachable the last "
    "known status up to 10 minutes old is used (`stale: true`), else "
    "`manual_check` with `status_unavailable`; never `pass` without a "
    "status. Answered from memory; a status in memory is current while "
    "health-records is reachable and its events are followed. A deleted "
    "gate device's token answers 401. `venue_id` is required with a user "
    "token (422 otherwise); one that is not of the system's id format (26 "
    "characters of lower-case Crockford base32) is an unknown venue: 404, "
    "whatever the token. 503 when venue-admin cannot be reached and the "
    "venue is not in memory. `lines` are what a gate's screen would show for the "
    "same scan (as `POST /v1/gate/verify` answers them): Chinese by default, English "
    "with `Accept-Language: en`.",
)
async def verify(request: Request) -> Response:
    return await _answer(request, answer_verify)


@router.post(
    "/v1/gate/verify",
    response_model=GateResponse,
    responses=problem_responses(503),
    openapi_extra=_operation(GateVerifyRequest, "DeviceToken"),
    summary="A gate's scan: the compact answer for its display",
    description="`open` is true only for `pass`. `lines` are the screen's lines, top "
    "to bottom; the first is the masked name when the credential checked. "
    "Chinese by default, English with `Accept-Language: en`. A missing or bad "
    "token 401 `unauthorized`; a valid token that is not a device's 403 "
    "`forbidden`.",
)
async def gate_verify(request: Request) -> Response:
    return await _answer(request, answer_gate)


def _direct(
    answer: Callable[[ScanService, str | None, str | None, bytes], Awaitable[bytes]],
) -> DirectEndpoint:
    """The direct endpoint of one of the answers above: the token and the language from the
    raw headers."""

    async def endpoint(app: ServiceApp, headers: dict[bytes, bytes], body: bytes) -> bytes:
        return await answer(
            app.state.scan_service,
            header_text(headers.get(b"authorization")),
            header_text(headers.get(b"accept-language")),
            body,
        )

    return endpoint


# The app answers these paths' POSTs directly (main.py; hc_common.app `ServiceApp`).
DIRECT_ROUTES: dict[str, DirectEndpoint] = {
    "/v1/verify": _direct(answer_verify),
    "/v1/gate/verify": _direct(answer_gate),
}
