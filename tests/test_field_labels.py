"""Every field a client sends to any of the four services (body, query, path), as their
OpenAPI documents list them, has words in the translation table: a validation problem's detail
names it in Chinese (身份证号码：...), never by its machine name. No processes, no I/O: the
documents are made by the apps themselves."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from hc_common.i18n import FIELDS
from health_records.main import create_app as health_records_app
from issuer.main import create_app as issuer_app
from venue_admin.main import create_app as venue_admin_app
from verifier.main import create_app as verifier_app


def _names(document: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> set[str]:
    """The property names of a schema, through references, lists and unions."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return set()
        seen.add(name)
        return _names(document, document["components"]["schemas"][name], seen)
    found = set(schema.get("properties", {}))
    parts = [*schema.get("anyOf", []), *schema.get("oneOf", []), *schema.get("allOf", [])]
    parts += [schema["items"]] if isinstance(schema.get("items"), dict) else []
    parts += list(schema.get("properties", {}).values())
    for part in parts:
        found |= _names(document, part, seen)
    return found


def request_fields(app: FastAPI) -> dict[str, str]:
    """Each field name a request may carry -> one operation that takes it."""
    document = app.openapi()
    fields: dict[str, str] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                fields.setdefault(parameter["name"], where)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                for name in _names(document, media["schema"], set()):
                    fields.setdefault(name, where)
    return fields


@pytest.mark.parametrize(
    "create_app",
    [issuer_app, venue_admin_app, health_records_app, verifier_app],
    ids=["issuer", "venue-admin", "health-records", "verifier"],
)
def test_every_request_field_has_a_chinese_label(create_app: Callable[[], FastAPI]) -> None:
    fields = request_fields(create_app())
    assert {"id_number", "phone", "venue_id", "qr"} & fields.keys(), "fields were found"
    unlabelled = {name: where for name, where in fields.items() if name not in FIELDS}
    assert unlabelled == {}, "add these to hc_common.i18n.FIELDS"
