"""The staff page's routes (verifier.scan_page): the redirect, the HTML with versioned asset
URLs, the config the page reads, the assets' types and caching. The page's behaviour in a
browser is tested in tests/browser."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from hc_common.app import create_service_app
from verifier.config import Settings
from verifier.scan_page.router import ASSETS, router


@asynccontextmanager
async def no_runtime(app: FastAPI) -> AsyncIterator[None]:
    yield


def page_app(**settings: str) -> FastAPI:
    """The page's router in the service's app factory (its error handlers), with no runtime:
    the routes read only the settings."""
    app = create_service_app(title="t", description="", lifespan=no_runtime, routers=[router])
    app.state.settings = Settings(**settings)  # type: ignore[arg-type]
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://v")


async def test_redirect_and_page_with_versioned_assets() -> None:
    async with client(page_app()) as http:
        redirect = await http.get("/scan")
        assert redirect.status_code == 308 and redirect.headers["location"] == "/scan/"
        page = await http.get("/scan/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert (
        "connect-src 'self' http://127.0.0.1:8001 http://127.0.0.1:8002"
        in (page.headers["content-security-policy"])
    )
    urls = re.findall(r'(?:src|href)="(assets/[^"]+)"', page.text)
    assert sorted(u.split("?")[0] for u in urls) == [
        "assets/app.js",
        "assets/style.css",
        "assets/vendor/jsQR.min.js",
    ]
    assert "{{" not in page.text and "https://" not in page.text  # nothing from outside
    async with client(page_app()) as http:
        for url in urls:
            name, version = url.removeprefix("assets/").split("?v=")
            asset = await http.get("/scan/" + url)
            assert asset.status_code == 200 and asset.content == ASSETS[name].body
            assert version == ASSETS[name].version
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            expected = "text/css" if name.endswith(".css") else "text/javascript"
            assert asset.headers["content-type"] == expected + "; charset=utf-8"


async def test_config_names_the_public_urls_defaulting_to_the_upstream_ones() -> None:
    async with client(page_app()) as http:
        body = (await http.get("/scan/config.json")).json()
    assert body == {
        "issuer_url": "http://127.0.0.1:8001",
        "venue_admin_url": "http://127.0.0.1:8002",
    }
    public = page_app(
        public_issuer_url="https://id.example.cn/",
        public_venue_admin_url="https://venues.example.cn",
    )
    async with client(public) as http:
        body = (await http.get("/scan/config.json")).json()
        policy = (await http.get("/scan/")).headers["content-security-policy"]
    assert body == {
        "issuer_url": "https://id.example.cn",
        "venue_admin_url": "https://venues.example.cn",
    }
    assert "connect-src 'self' https://id.example.cn https://venues.example.cn;" in policy


async def test_unknown_asset_and_licence_files_are_not_served() -> None:
    async with client(page_app()) as http:
        for path in ("nope.js", "vendor/jsQR.LICENSE", "index.html", "../router.py"):
            assert (await http.get("/scan/assets/" + path)).status_code == 404, path
