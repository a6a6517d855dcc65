"""Family credentials: apply, list, show, print, reissue, revoke; and the dev face check."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from hc_common.app import problem_responses
from hc_common.clock import age_on, cst_today
from hc_common.hygiene import EntityId
from issuer.card.render import card_pdf, qr_png, qr_svg
from issuer.credential.models import Credential
from issuer.credential.schemas import (
    CredentialCreate,
    CredentialList,
    CredentialOut,
    FaceCheckRequest,
    FaceCheckToken,
    Holder,
    Relationship,
)
from issuer.credential.service import card_data, credential_status
from issuer.deps import CredentialServiceDep, CurrentUser, FaceChecksDep

router = APIRouter(prefix="/v1/family/credentials", tags=["family credentials"])


def credential_out(credential: Credential) -> CredentialOut:
    return CredentialOut(
        credential_id=credential.id,
        status=credential_status(credential),
        holder=Holder(
            masked_name=credential.masked_name,
            masked_id_number=credential.masked_id_number,
            age=age_on(credential.birth_date, cst_today()),
            relationship=Relationship(credential.relationship),
        ),
        issued_at=credential.issued_at,
        expires_at=credential.expires_at,
        qr=credential.qr,
        version=credential.version,
    )


@router.post(
    "",
    status_code=201,
    response_model=CredentialOut,
    responses=problem_responses(409, 503),
    summary="Apply for a family member's credential",
    description="The face-check token is checked before the photo is decoded: 403 "
    "`face_check_failed` when it is missing, forged, expired, used before (by a concurrent "
    "application too) or names another person. 422 `invalid_id_number`, `not_eligible` "
    "(aged 17-59 on the day of application, China time), `invalid_photo` (not a decodable "
    "JPEG or PNG, over 2 MiB, or over 4,096 pixels on either side), `invalid_text` (a "
    "control character in the name); 409 `credential_exists` when the person already holds "
    "an active credential (one per person, however applications race); 503 when "
    "health-records cannot be reached.",
)
async def apply(
    body: CredentialCreate, user_id: CurrentUser, service: CredentialServiceDep
) -> CredentialOut:
    return credential_out(await service.apply(user_id, body))


@router.get("", response_model=CredentialList, summary="The signed-in user's family list")
async def list_credentials(
    user_id: CurrentUser,
    service: CredentialServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: Annotated[
        EntityId | None, Query(description="`next_cursor` of the previous page")
    ] = None,
) -> CredentialList:
    page = await service.list_for_user(user_id, limit, cursor)
    return CredentialList(
        items=[credential_out(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{credential_id}",
    response_model=CredentialOut,
    summary="One credential (another user's is 404)",
)
async def get_credential(
    credential_id: str, user_id: CurrentUser, service: CredentialServiceDep
) -> CredentialOut:
    return credential_out(await service.get_own(user_id, credential_id))


PRIVATE = {"Cache-Control": "private, no-store"}
PRINT_NOTE = (
    "Served for any of the caller's own credentials, also a revoked or expired one "
    "(it then scans as revoked or expired); another user's is 404."
)


@router.get(
    "/{credential_id}/qr.png",
    response_class=Response,
    summary="The credential's QR code as PNG",
    description="Level M, 4-module quiet zone, 8 pixels a module. " + PRINT_NOTE,
    responses={200: {"content": {"image/png": {}}}},
)
async def credential_qr_png(
    credential_id: str, user_id: CurrentUser, service: CredentialServiceDep
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    return Response(qr_png(credential.qr), media_type="image/png", headers=PRIVATE)


@router.get(
    "/{credential_id}/qr.svg",
    response_class=Response,
    summary="The credential's QR code as SVG",
    description="Level M, 4-module quiet zone. " + PRINT_NOTE,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
async def credential_qr_svg(
    credential_id: str, user_id: CurrentUser, service: CredentialServiceDep
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    return Response(qr_svg(credential.qr), media_type="image/svg+xml", headers=PRIVATE)


@router.get(
    "/{credential_id}/card.pdf",
    response_class=Response,
    summary="The printable card (PDF)",
    description="Default `layout=card`: one page of 85.6 x 54 mm (ID-1) with the photo, "
    "masked name, masked ID number, last valid day (China time), "
    "广西健康码凭证, the version and the QR code. `layout=a4`: an A4 page "
    "with the same card at true size near the top, cutting marks at its "
    "corners and a printing hint (print at 100%). The Chinese font "
    "(WenQuanYi Micro Hei) is embedded. Any other layout is 422. " + PRINT_NOTE,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def credential_card_pdf(
    credential_id: str,
    user_id: CurrentUser,
    service: CredentialServiceDep,
    layout: Literal["card", "a4"] = Query("card"),
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    pdf = await run_in_threadpool(card_pdf, card_data(credential), layout)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            **PRIVATE,
            "Content-Disposition": f'inline; filename="credential-{credential.id}.pdf"',
        },
    )


@router.post(
    "/{credential_id}/reissue",
    status_code=201,
    response_model=CredentialOut,
    responses=problem_responses(409),
    summary="Reissue (a lost card): version + 1, the old one revoked at once",
    description="Only the active credential can be reissued: a revoked or expired one is "
    "409 `credential_not_active` (apply again, with a new face check); of reissues racing "
    "each other one wins and the others get 409. 422 `not_eligible` when the holder is no "
    "longer eligible.",
)
async def reissue(
    credential_id: str, user_id: CurrentUser, service: CredentialServiceDep
) -> CredentialOut:
    return credential_out(await service.reissue(user_id, credential_id))


@router.delete(
    "/{credential_id}",
    status_code=204,
    summary="Revoke a credential",
    description="Revoking one already revoked is a 204 too; another user's is 404.",
)
async def revoke(
    credential_id: str, user_id: CurrentUser, service: CredentialServiceDep
) -> Response:
    await service.revoke(user_id, credential_id)
    return Response(status_code=204)


dev_router = APIRouter(tags=["dev"])


@dev_router.post(
    "/dev/face-checks",
    response_model=FaceCheckToken,
    summary="Dev only: stands in for the face-verification provider",
    description="Name and ID number are checked as in an application; the token "
    "lives 10 minutes and is good for one application of that person.",
)
async def dev_face_check(body: FaceCheckRequest, face_checks: FaceChecksDep) -> FaceCheckToken:
    return FaceCheckToken(face_check_token=face_checks.issue(body.name, body.id_number))
