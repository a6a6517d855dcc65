"""CORS: the staff page's origins may call a service from the browser (a preflight gets the
allow headers), others may not; the setting `CORS_ORIGINS` names them."""

import httpx
import pytest
from fastapi import APIRouter

from hc_common.app import create_service_app
from hc_common.settings import DEV_CORS_ORIGINS, ServiceSettings

router = APIRouter()


@router.post("/v1/things")
async def things() -> dict[str, str]:
    return {"ok": "yes"}


PAGE = "https://scan.example:8443"


def client(origins: list[str] | None) -> httpx.AsyncClient:
    app = create_service_app(
        title="t", description="t", lifespan=None, routers=[router], cors_origins=origins
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,accept-language",
    }


async def test_a_preflight_from_an_allowed_origin_gets_the_allow_headers() -> None:
    async with client([PAGE]) as http:
        answer = await http.options("/v1/things", headers=preflight(PAGE))
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == PAGE
        assert "POST" in answer.headers["access-control-allow-methods"]
        allowed = answer.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "accept-language"} <= {
            h.strip() for h in allowed.split(",")
        }
        assert "access-control-allow-credentials" not in answer.headers
        # The actual request's answer names the origin too, errors included.
        done = await http.post("/v1/things", headers={"Origin": PAGE})
        assert done.status_code == 200 and done.headers["access-control-allow-origin"] == PAGE
        missing = await http.get("/nowhere", headers={"Origin": PAGE})
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == PAGE


async def test_another_origin_gets_no_allow_headers() -> None:
    async with client([PAGE]) as http:
        answer = await http.options("/v1/things", headers=preflight("https://evil.example"))
        assert answer.status_code == 400
        assert "access-control-allow-origin" not in answer.headers
        done = await http.post("/v1/things", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in done.headers


async def test_no_origins_no_cors() -> None:
    async with client([]) as http:
        answer = await http.options("/v1/things", headers=preflight(PAGE))
        assert "access-control-allow-origin" not in answer.headers
        assert answer.status_code == 405


async def test_the_setting_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", f" {PAGE}/ , http://other.example:8004")
    assert ServiceSettings().cors_origins == [PAGE, "http://other.example:8004"]
    async with client(None) as http:
        answer = await http.options("/v1/things", headers=preflight(PAGE))
        assert answer.headers["access-control-allow-origin"] == PAGE
    monkeypatch.delenv("CORS_ORIGINS")
    assert ServiceSettings().cors_origins == list(DEV_CORS_ORIGINS)
    assert "http://127.0.0.1:8004" in DEV_CORS_ORIGINS
    assert "https://localhost:8443" in DEV_CORS_ORIGINS
