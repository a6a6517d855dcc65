"""Family credentials: apply, list, show, print, reissue, revoke; and the dev face check."""

import hashlib
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response

from hc_common.app import problem_responses
from hc_common.clock import age_on, cst_today
from hc_common.hygiene import EntityId
from issuer.card.printer import CardPrinter
from issuer.card.render import card_file_name
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
from issuer.deps import CredentialServiceDep, CurrentUser, FaceChecksDep, SettingsDep

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
# A credential's QR code never changes (a reissue is a new credential), and it carries
# nothing personal: the browser may keep it, revalidating by its ETag.
QR_CACHE = "private, max-age=31536000, immutable"
PRINT_NOTE = (
    "Served for any of the caller's own credentials, also a revoked or expired one "
    "(it then scans as revoked or expired); another user's is 404."
)


async def _card_printer(request: Request) -> CardPrinter:
    printer: CardPrinter = request.app.state.card_printer
    return printer


CardPrinterDep = Annotated[CardPrinter, Depends(_card_printer)]


def _qr_headers(qr: str, kind: str) -> dict[str, str]:
    etag = '"' + hashlib.sha256(f"{kind}:{qr}".encode()).hexdigest()[:32] + '"'
    return {"Cache-Control": QR_CACHE, "ETag": etag}


def _client_holds(request: Request, headers: dict[str, str]) -> bool:
    """Whether `If-None-Match` names the image's ETag (then 304)."""
    wanted = request.headers.get("if-none-match")
    if wanted is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
    return headers["ETag"] in tags or "*" in tags


QR_NOTE = (
    " Cached by the browser (`Cache-Control: private, max-age=31536000, immutable`: a "
    "credential's code never changes) with an `ETag`; `If-None-Match` with it answers 304. "
)


@router.get(
    "/{credential_id}/qr.png",
    response_class=Response,
    summary="The credential's QR code as PNG",
    description="Level M, 4-module quiet zone, 8 pixels a module, black on white, 1 bit a "
    "pixel." + QR_NOTE + PRINT_NOTE,
    responses={200: {"content": {"image/png": {}}}, 304: {"description": "Not modified"}},
)
async def credential_qr_png(
    request: Request,
    credential_id: str,
    user_id: CurrentUser,
    service: CredentialServiceDep,
    printer: CardPrinterDep,
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    headers = _qr_headers(credential.qr, "png")
    if _client_holds(request, headers):
        return Response(status_code=304, headers=headers)
    png = await printer.qr_png(credential.qr)
    return Response(png, media_type="image/png", headers=headers)


@router.get(
    "/{credential_id}/qr.svg",
    response_class=Response,
    summary="The credential's QR code as SVG",
    description="Level M, 4-module quiet zone." + QR_NOTE + PRINT_NOTE,
    responses={200: {"content": {"image/svg+xml": {}}}, 304: {"description": "Not modified"}},
)
async def credential_qr_svg(
    request: Request,
    credential_id: str,
    user_id: CurrentUser,
    service: CredentialServiceDep,
    printer: CardPrinterDep,
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    headers = _qr_headers(credential.qr, "svg")
    if _client_holds(request, headers):
        return Response(status_code=304, headers=headers)
    svg = await printer.qr_svg(credential.qr)
    return Response(svg, media_type="image/svg+xml", headers=headers)


def content_disposition(file_name: str, fallback: str) -> str:
    """`inline` with an ASCII `filename` for old clients and the UTF-8 `filename*`
    (RFC 6266 / RFC 8187) that browsers prefer."""
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


@router.get(
    "/{credential_id}/card.pdf",
    response_class=Response,
    summary="The printable card (PDF)",
    description="Default `layout=card`: one page of 85.6 x 54 mm (ID-1): a band with "
    "广西健康码凭证 and the issuing authority (setting `ISSUER_CARD_ISSUING_AUTHORITY`), "
    "the photo, masked name, masked ID number, last valid day (China time), 补办 n on a "
    "reissued card (version n >= 2; nothing on the first), the scanning hint in 10 pt and "
    "the QR code (41 mm with its quiet zone). `layout=a4`: an A4 page with the same card "
    "at true size, cutting marks, a 5 cm line to check the print's scale, and the family's "
    "instructions in 14 pt: printing at actual size (100 %, not fit to page), cutting and "
    "laminating, use, a lost card (reissue in the mini-program: the old card stops "
    "working at once) and appeals. The Chinese font (WenQuanYi Micro Hei) is embedded. "
    "Any other layout is 422. File name (`Content-Disposition`, `filename*` in UTF-8): "
    "健康码凭证-李＊华-卡片.pdf or ...-A4.pdf, with -补办n before the layout on a "
    "reissued card; the masked name only (its star full-width, which every system allows "
    "in a file name); the ASCII `filename` is credential-{id}-card.pdf / -a4.pdf. "
    "Not cached (`no-store`: it shows the photo). " + PRINT_NOTE,
    responses={200: {"content": {"application/pdf": {}}}},
)
async def credential_card_pdf(
    credential_id: str,
    user_id: CurrentUser,
    service: CredentialServiceDep,
    settings: SettingsDep,
    printer: CardPrinterDep,
    layout: Literal["card", "a4"] = Query("card"),
) -> Response:
    credential = await service.get_own(user_id, credential_id)
    card = card_data(credential, settings.card_issuing_authority)
    pdf = await printer.card_pdf(card, layout)
    fallback = f"credential-{credential.id}-{layout}.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            **PRIVATE,
            "Content-Disposition": content_disposition(card_file_name(card, layout), fallback),
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
