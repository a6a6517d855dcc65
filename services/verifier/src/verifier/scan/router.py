"""The scan over HTTP: `POST /v1/verify` for staff and gates, `POST /v1/gate/verify` for a
gate's display."""

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from hc_common.app import problem_responses
from hc_common.clock import rfc3339
from hc_common.deps import bearer_token
from hc_common.errors import Forbidden, wants_english
from verifier.scan.decision import hours_since
from verifier.scan.display import gate_lines
from verifier.scan.schemas import GateResponse, GateVerifyRequest, VerifyRequest, VerifyResponse
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
    request: Request,
    model: type[VerifyRequest] | type[GateVerifyRequest],
    *,
    device_only: bool = False,
) -> ScanResult:
    """Scanner first (401, then 403 for a user at a gate's endpoint, before 422, as with a
    dependency), then the body, then the scan.

    No FastAPI dependencies or body parameter here: their resolution cost as much as the
    whole scan. The body's schema and the security are given to the OpenAPI description by
    hand below."""
    service: ScanService = request.app.state.scan_service
    scanner = await service.scanner(bearer_token(request))
    if device_only and scanner.kind != "device":
        raise Forbidden(
            detail="仅闸机可调用此接口", detail_en="Only a gate device's token is accepted here"
        )
    try:
        body = model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
    return await service.scan(scanner, body.qr, getattr(body, "venue_id", None))


def _operation(model: type[BaseModel], *schemes: str) -> dict[str, Any]:
    """The request body and the security of an operation whose route reads both itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        },
        "security": [{scheme: []} for scheme in schemes],
    }


def verify_answer(result: ScanResult, english: bool = False) -> dict[str, Any]:
    """The body of `VerifyResponse` as a plain dict: built and serialised once, with orjson
    (the scan is the hot path; the model documents the shape in the OpenAPI description).
    `lines` are the gate's (`gate_lines`), so that a staff page and a gate say the same."""
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
            "expires_at": rfc3339(credential.expires_at),
        }
    if status is not None:
        nat = None
        if status.nat_result and status.nat_sample_time:
            nat = {
                "result": status.nat_result,
                "sample_time": rfc3339(status.nat_sample_time),
                "hours_since_sample": hours_since(status.nat_sample_time, result.checked_at),
            }
        vaccination = (
            {
                "doses": status.vaccine_doses,
                "last_dose_at": rfc3339(status.last_dose_at) if status.last_dose_at else None,
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
        "checked_at": rfc3339(result.checked_at),
        "stale": result.stale,
        "lines": gate_lines(result, english),
    }


def _json(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


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
    result = await _scan(request, VerifyRequest)
    english = wants_english(request.headers.get("accept-language"))
    return _json(verify_answer(result, english))


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
    result = await _scan(request, GateVerifyRequest, device_only=True)
    english = wants_english(request.headers.get("accept-language"))
    return _json(
        {
            "open": result.decision.decision == "pass",
            "decision": result.decision.decision,
            "color": result.status.color if result.status else None,
            "lines": gate_lines(result, english),
            "record_id": result.record_id,
        }
    )


class ScanRoute(Route):
    """A scan endpoint dispatched as a plain Starlette route. FastAPI's per-request machinery
    (dependency solving, exit stacks) costs about 50 us even for an endpoint without
    dependencies (`python -m tests.bench verifier`), more than the scan itself; the
    endpoints above already read their header and body themselves, so nothing is lost. The
    APIRoute of the same path stays in the router for the OpenAPI description; these are
    put before it (main.py), so they answer. Errors go through the app's handlers as before.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self  # the metrics' route label, as for an APIRoute
        return match, child_scope


SCAN_ROUTES = [
    ScanRoute("/v1/verify", verify, methods=["POST"]),
    ScanRoute("/v1/gate/verify", gate_verify, methods=["POST"]),
]
