"""The staff scanning page (`GET /scan/`): a plain HTML/JS/CSS page served by the verifier.

The page signs in at the issuer, lists the caller's venues at venue-admin (both from the
browser, by CORS), decodes QR codes from the camera in the page (vendored jsQR) or takes a
handheld scanner's typed text, and calls `POST /v1/verify` on this service (same origin).

Everything the page loads is served from here (no CDN): the assets are read once at import,
served under `/scan/assets/` with a version (a hash of their content) in the URL and a year's
cache, so that a new release is fetched at once while an unchanged asset never is. The HTML
and `config.json` are not cached (they name the current versions and URLs).
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from hc_common.errors import NotFound
from verifier.config import Settings

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
# Versioned URLs: an asset's content never changes under its URL.
LONG_CACHE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str


def _load_assets() -> dict[str, Asset]:
    """Every servable file under static/ (the licence files are not served), by its path."""
    assets = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in (".js", ".css"):
            body = path.read_bytes()
            name = path.relative_to(STATIC).as_posix()
            version = hashlib.sha256(body).hexdigest()[:12]
            assets[name] = Asset(body, CONTENT_TYPES[path.suffix], version)
    return assets


ASSETS = _load_assets()


def _index_html() -> bytes:
    """index.html with each `{{asset:NAME}}` replaced by the asset's versioned URL."""
    template = (STATIC / "index.html").read_text(encoding="utf-8")

    def versioned(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"assets/{name}?v={ASSETS[name].version}"

    return re.sub(r"\{\{asset:([^}]+)\}\}", versioned, template).encode()


INDEX_HTML = _index_html()


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, as a Content-Security-Policy source."""
    match = re.match(r"^[a-z][a-z0-9+.-]*://[^/?#]+", url.strip(), re.IGNORECASE)
    return match.group(0) if match else ""


def _security_headers(settings: Settings) -> dict[str, str]:
    """The page talks to itself, the issuer and venue-admin, and nothing else; the camera
    shows in a <video> from a MediaStream."""
    upstream = " ".join(
        origin
        for origin in (
            _origin(settings.public_issuer_url),
            _origin(settings.public_venue_admin_url),
        )
        if origin
    )
    policy = (
        "default-src 'self'; "
        f"connect-src 'self' {upstream}; "
        "img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": NO_CACHE,
    }


router = APIRouter()


@router.get("/scan", include_in_schema=False)
async def scan_redirect() -> Response:
    # Relative asset URLs in the page resolve under /scan/ only with the slash.
    return RedirectResponse("/scan/", status_code=308)


@router.get("/scan/", include_in_schema=False)
async def scan_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    return Response(
        INDEX_HTML,
        media_type=CONTENT_TYPES[".html"],
        headers=_security_headers(settings),
    )


@router.get("/scan/config.json", include_in_schema=False)
async def scan_config(request: Request) -> Response:
    """The public URLs of the services the page calls from the browser."""
    settings: Settings = request.app.state.settings
    body = {
        "issuer_url": settings.public_issuer_url.rstrip("/"),
        "venue_admin_url": settings.public_venue_admin_url.rstrip("/"),
    }
    return Response(
        orjson.dumps(body),
        media_type="application/json",
        headers={"Cache-Control": NO_CACHE, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/scan/assets/{name:path}", include_in_schema=False)
async def scan_asset(name: str) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(detail="无此文件", detail_en="No such file")
    return Response(
        asset.body,
        media_type=asset.content_type,
        headers={"Cache-Control": LONG_CACHE, "X-Content-Type-Options": "nosniff"},
    )
