"""Gate devices over HTTP: registration and deletion, device tokens, the keys that sign them."""

from fastapi import APIRouter, Query, Request, Response

from hc_common.auth.keys import KeyRing
from venue_admin.deps import CurrentUser, DeviceServiceDep
from venue_admin.device.schemas import (
    DeviceCreate,
    DeviceCreated,
    DeviceList,
    DeviceOut,
    DeviceToken,
    DeviceTokenRequest,
)

router = APIRouter(tags=["devices"])


@router.post(
    "/v1/venues/{venue_id}/devices",
    status_code=201,
    response_model=DeviceCreated,
    summary="Register a gate device (闸机) (main admin only)",
    description="The `device_secret` is shown this once; only a keyed hash is kept. "
    "A lost secret means deleting the device and registering it again.",
)
async def register_device(
    venue_id: str,
    body: DeviceCreate,
    user: CurrentUser,
    devices: DeviceServiceDep,
) -> DeviceCreated:
    device, secret = await devices.register(user.id, venue_id, body)
    return DeviceCreated(device_id=device.id, device_secret=secret)


@router.get(
    "/v1/venues/{venue_id}/devices",
    response_model=DeviceList,
    summary="The venue's registered gate devices (members only; never the secrets)",
)
async def list_devices(
    venue_id: str,
    user: CurrentUser,
    devices: DeviceServiceDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None),
) -> DeviceList:
    page = await devices.active_of_venue(user.id, venue_id, limit, cursor)
    items = [
        DeviceOut(
            device_id=d.id,
            name=d.name,
            manufacturer=d.manufacturer,
            model=d.model,
            created_at=d.created_at,
        )
        for d in page.items
    ]
    return DeviceList(items=items, next_cursor=page.next_cursor)


@router.delete(
    "/v1/venues/{venue_id}/devices/{device_id}",
    status_code=204,
    summary="Delete a gate device (main admin only)",
    description="The device can no longer get tokens at once, and the verifier "
    "refuses its existing tokens within 2 seconds (device event). "
    "An unknown or already deleted device: 404.",
)
async def delete_device(
    venue_id: str,
    device_id: str,
    user: CurrentUser,
    devices: DeviceServiceDep,
) -> Response:
    await devices.delete(user.id, venue_id, device_id)
    return Response(status_code=204)


@router.post(
    "/v1/devices/token",
    response_model=DeviceToken,
    summary="A gate device's access token, for its id and secret",
    description="An EdDSA JWT signed by venue-admin (keys at `/.well-known/jwks.json`, "
    "purpose `device`), claims `iss` `hc-venue-admin`, `aud` `hc`, `sub` "
    "the device id, `venue_id`, `typ` `device`, `iat`, `exp`. Lives "
    "`expires_in` seconds (86400); ask for a new one before it ends. A "
    "wrong id or secret, or a deleted device: 401 `invalid_credentials`.",
)
async def device_token(
    body: DeviceTokenRequest, devices: DeviceServiceDep, request: Request
) -> DeviceToken:
    ttl = request.app.state.settings.device_token_ttl_seconds
    token = await devices.token(request.app.state.ring, body.device_id, body.device_secret, ttl)
    return DeviceToken(access_token=token, expires_in=ttl)


keys_router = APIRouter(tags=["keys"])


@keys_router.get(
    "/.well-known/jwks.json",
    summary="Public keys that sign gate-device tokens",
    description="Ed25519 keys (`alg` `EdDSA`) with their `kid` and `purpose` "
    "(`device`). Every key not retired is listed.",
)
async def jwks(request: Request) -> dict[str, list[dict[str, str]]]:
    ring: KeyRing = request.app.state.ring
    return ring.jwks()
