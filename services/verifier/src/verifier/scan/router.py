from typing import Annotated

from fastapi import APIRouter, Depends, Request
from hc_common.deps import bearer_token
from hc_common.errors import wants_english
from starlette.responses import Response

from verifier.scan.decision import hours_since
from verifier.scan.display import gate_lines
from verifier.scan.schemas import (
    CredentialOut,
    GateResponse,
    GateVerifyRequest,
    HealthOut,
    HolderOut,
    NatOut,
    VaccinationOut,
    VerifyRequest,
    VerifyResponse,
)
from verifier.scan.service import Scanner, ScanResult, ScanService

router = APIRouter(tags=["scan"])


def _service(request: Request) -> ScanService:
    return request.app.state.scan_service  # type: ignore[no-any-return]


async def _scanner(request: Request) -> Scanner:
    return await _service(request).scanner(bearer_token(request))


ScanServiceDep = Annotated[ScanService, Depends(_service)]
ScannerDep = Annotated[Scanner, Depends(_scanner)]


def verify_response(result: ScanResult) -> VerifyResponse:
    credential, status = result.credential, result.status
    holder = health = credential_out = None
    if credential is not None:
        holder = HolderOut(masked_name=credential.masked_name,
                           masked_id_number=credential.masked_id_number, age=result.age or 0)
        credential_out = CredentialOut(credential_id=credential.credential_id,
                                       version=credential.version,
                                       expires_at=credential.expires_at)
    if status is not None:
        nat = None
        if status.nat_result and status.nat_sample_time:
            nat = NatOut(result=status.nat_result, sample_time=status.nat_sample_time,
                         hours_since_sample=hours_since(status.nat_sample_time, result.checked_at))
        vaccination = (VaccinationOut(doses=status.vaccine_doses, last_dose_at=status.last_dose_at)
                       if status.vaccine_doses else None)
        health = HealthOut(color=status.color, nat=nat, vaccination=vaccination)
    return VerifyResponse(decision=result.decision.decision,  # type: ignore[arg-type]
                          reasons=result.decision.reasons, holder=holder, health=health,
                          credential=credential_out, record_id=result.record_id,
                          checked_at=result.checked_at, stale=result.stale)


@router.post("/v1/verify", response_model=VerifyResponse,
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
                         "token (422 otherwise).")
async def verify(body: VerifyRequest, scanner: ScannerDep,
                 service: ScanServiceDep) -> Response:
    # Serialised once by the model itself (FastAPI would validate it a second time).
    answer = verify_response(await service.scan(scanner, body.qr, body.venue_id))
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/v1/gate/verify", response_model=GateResponse,
             summary="A gate's scan: the compact answer for its display",
             description="`open` is true only for `pass`. `lines` are the screen's lines, top "
                         "to bottom; the first is the masked name when the credential checked. "
                         "Chinese by default, English with `Accept-Language: en`.")
async def gate_verify(body: GateVerifyRequest, scanner: ScannerDep, service: ScanServiceDep,
                      request: Request) -> Response:
    result = await service.scan(scanner, body.qr, None)
    english = wants_english(request.headers.get("accept-language"))
    answer = GateResponse(open=result.decision.decision == "pass",
                          decision=result.decision.decision,  # type: ignore[arg-type]
                          color=result.status.color if result.status else None,
                          lines=gate_lines(result, english), record_id=result.record_id)
    return Response(answer.model_dump_json(), media_type="application/json")
