"""`/docs` and `/redoc` of every service need nothing from outside: each script, style and
icon the pages name is served by the service itself, with the right content type."""

import importlib
import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from hc_common.devstack import SERVICES

BASE = "http://service.test"


def service_app(package: str) -> FastAPI:
    app = importlib.import_module(f"{package}.main").app
    assert isinstance(app, FastAPI)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


def referenced(html: str) -> list[str]:
    """Every URL the page loads or links to: `src=`, `href=`, and the document's `url:`."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    found += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)
    found += re.findall(r"""spec-url\s*=\s*["']([^"']+)["']""", html)
    return found


@pytest.mark.parametrize("package", [package for package, _prefix in SERVICES.values()])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_from_the_service(package: str, page: str) -> None:
    async with client(service_app(package)) as http:
        answer = await http.get(page)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        html = answer.text
        urls = referenced(html)
        assert any(u.endswith(".js") for u in urls), urls
        for url in urls:
            absolute = urljoin(BASE + page, url)
            assert urlsplit(absolute).netloc == urlsplit(BASE).netloc, f"{url} leaves the origin"
            fetched = await http.get(absolute)
            assert fetched.status_code == 200, url
        # No absolute address of another host anywhere in the page (a CDN, a font service).
        assert not re.search(r"https?://", html), html


async def test_the_assets_have_their_content_types() -> None:
    async with client(service_app("verifier")) as http:
        expected = {
            "swagger-ui-bundle.js": "javascript",
            "swagger-ui.css": "text/css",
            "redoc.standalone.js": "javascript",
            "favicon.png": "image/png",
        }
        for name, content_type in expected.items():
            answer = await http.get(f"/docs-assets/{name}")
            assert answer.status_code == 200, name
            assert content_type in answer.headers["content-type"], name
            assert len(answer.content) > 1000, name
        assert (await http.get("/docs-assets/nothing.js")).status_code == 404


async def test_swagger_ui_asks_no_online_validator() -> None:
    async with client(service_app("issuer")) as http:
        html = (await http.get("/docs")).text
    assert '"validatorUrl": null' in html
    assert "oauth2RedirectUrl" in html
