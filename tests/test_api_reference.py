"""docs/api.md stays true: every operation each service serves (its OpenAPI document, from
`create_app()` in process) is in the reference, and every public operation the reference
names is served. The reader's documents point at nothing outside the repository."""

import importlib
import re
from pathlib import Path

import pytest
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "api.md"
PACKAGES = {
    "issuer": "issuer",
    "venue-admin": "venue_admin",
    "health-records": "health_records",
    "verifier": "verifier",
}
# Served by every service or outside the public interface: the reference describes them as
# groups, by these words.
GROUPED = {
    "/internal/": "`/internal/...`",
    "/dev/": "`/dev/...`",
    "/healthz": "`GET /healthz`",
    "/readyz": "`GET /readyz`",
    "/metrics": "`GET /metrics`",
    "/docs": "`GET /docs`",
    "/redoc": "`GET /redoc`",
    "/openapi.json": "`GET /openapi.json`",
}
# What the reference names as an operation: `METHOD /path` in backquotes.
NAMED = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")


def served(service: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in the service's OpenAPI document."""
    app: FastAPI = importlib.import_module(f"{PACKAGES[service]}.main").create_app()
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    }


def shape(path: str) -> str:
    """Path parameters by position, not name: `/v1/venues/{id}` is `/v1/venues/{venue_id}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture(scope="module")
def operations() -> dict[str, set[tuple[str, str]]]:
    return {service: served(service) for service in PACKAGES}


def test_every_operation_served_is_in_the_reference(
    operations: dict[str, set[tuple[str, str]]],
) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    named = {(method, shape(path)) for method, path in NAMED.findall(text)}
    missing = []
    for service, ops in operations.items():
        assert ("POST", "/v1/auth/otp") in ops or service != "issuer"  # the documents load
        for method, path in sorted(ops):
            group = next((g for g in GROUPED if path.startswith(g)), None)
            if group is not None:
                if GROUPED[group] not in text:
                    missing.append(f"{service}: the group {GROUPED[group]} ({method} {path})")
            elif (method, shape(path)) not in named:
                missing.append(f"{service}: {method} {path}")
    assert missing == [], "not in docs/api.md: " + ", ".join(missing)


def test_every_public_operation_the_reference_names_is_served(
    operations: dict[str, set[tuple[str, str]]],
) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    every = {(method, shape(path)) for ops in operations.values() for method, path in ops}
    named = {
        (method, shape(path))
        for method, path in NAMED.findall(text)
        if path.startswith(("/v1/", "/.well-known/", "/dev/"))
    }
    assert len(named) >= 40, named  # the parsing finds them
    assert sorted(named - every) == [], "named in docs/api.md but served by no service"


READER_DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", READER_DOCUMENTS, ids=lambda p: p.name)
def test_the_reader_is_pointed_at_nothing_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "../shared" not in text
    assert "CONTRACT.md" not in text
    assert not re.search(r"\bthe (public )?contract\b", text, re.I), re.findall(
        r".{0,40}\bthe (?:public )?contract\b.{0,40}", text, re.I
    )
    for link in re.findall(r"\]\(([^)#\s]+)", text):
        if not link.startswith(("http://", "https://", "mailto:")):
            assert (path.parent / link).exists(), link


def test_the_readme_leads_to_the_quickstart_the_reference_and_each_service_s_docs() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/quickstart.md)" in text
    assert "](docs/api.md)" in text
    assert "make demo" in text
    for port in (8001, 8002, 8003, 8004):
        assert f"http://localhost:{port}/docs" in text
