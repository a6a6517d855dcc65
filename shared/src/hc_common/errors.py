"""RFC 9457 problem details: domain errors carry a stable `code`; one set of handlers shapes them.

Titles are Simplified Chinese by default and English on `Accept-Language: en`.
"""

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from hc_common.i18n import (
    PROBLEMS,
    VALIDATION,
    field_error,
    field_label,
    join_errors,
    validation_message,
    wants_english,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://healthcode.gx.gov.cn/problems/"

# code -> (Chinese title, English title): the translation table's problems (hc_common.i18n),
# the same dict. Services add theirs with register_messages().
MESSAGES: dict[str, tuple[str, str]] = PROBLEMS

_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    401: "unauthorized",
    403: "forbidden",
    429: "too_many_requests",
    409: "conflict",
    503: "service_unavailable",
}


def register_messages(messages: Mapping[str, tuple[str, str]]) -> None:
    MESSAGES.update(messages)


def title_for(code: str, english: bool) -> str:
    zh, en = MESSAGES.get(code, (code, code))
    return en if english else zh


class DomainError(Exception):
    """An expected failure of a rule, with its HTTP status and stable code."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        code: str | None = None,
        detail: str | None = None,
        *,
        status: int | None = None,
        detail_en: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.code = code or self.code
        self.status = status or self.status
        self.detail = detail
        self.detail_en = detail_en
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.code)


class NotFound(DomainError):
    status, code = 404, "not_found"


class Unauthorized(DomainError):
    status, code = 401, "unauthorized"


class Forbidden(DomainError):
    status, code = 403, "forbidden"


class Conflict(DomainError):
    status, code = 409, "conflict"


class Unprocessable(DomainError):
    status, code = 422, "validation_error"


class TooManyRequests(DomainError):
    status, code = 429, "too_many_requests"


class ServiceUnavailable(DomainError):
    status, code = 503, "service_unavailable"


class Problem(BaseModel):
    """The RFC 9457 body every error has (documented in each OpenAPI description)."""

    type: str
    title: str = Field(
        description="The code in words: Simplified Chinese, English with `Accept-Language: en`"
    )
    status: int
    detail: str = Field(
        description="What is wrong, in the title's language; for a validation error each "
        "field in words and its rule (`身份证号码：不是有效的身份证号码：校验码错误`)"
    )
    code: str = Field(description="Stable and machine-readable: switch on this, not the words")
    errors: list[dict[str, str]] | None = Field(
        None,
        description="Validation errors (422) only: `field` (the machine path, e.g. "
        "`results.3.id_number`), `code` (`missing`, `invalid_value`, or a code of ours such as "
        "`invalid_id_number`) and `message` (the rule in the title's language)",
    )


def problem_response(
    request_or_lang: Request | str | None,
    status: int,
    code: str,
    detail: str | None = None,
    *,
    detail_en: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    if isinstance(request_or_lang, Request):
        english = wants_english(request_or_lang.headers.get("accept-language"))
    else:
        english = wants_english(request_or_lang)
    title = title_for(code, english)
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": (detail_en if english and detail_en else detail) or title,
        "code": code,
    }
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {})
    )


def _field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


_PYDANTIC_TO_CODE = {"missing": "missing", "json_invalid": "invalid_json"}


def _message(kind: str, code: str, err: Mapping[str, Any], english: bool) -> str:
    """A field error in words: the table's message for its type, with its values; a code of
    ours the table has no message for reads as its title."""
    if kind not in VALIDATION and code in MESSAGES:
        return title_for(code, english)
    return validation_message(kind, err.get("ctx"), english, fallback=str(err.get("msg", "")))


def validation_problem(request: Request, exc: RequestValidationError) -> Response:
    """422 with each field's error: `errors[].field` the machine path, `code` Pydantic's type
    or ours, `message` in the request's language; the detail lists the fields in words."""
    english = wants_english(request.headers.get("accept-language"))
    errors = []
    details = []
    for err in exc.errors():
        kind = str(err.get("type", "invalid"))
        code = _PYDANTIC_TO_CODE.get(kind, kind if kind in MESSAGES else "invalid_value")
        message = _message(kind, code, err, english)
        loc = err.get("loc", ())
        errors.append({"field": _field_path(loc), "code": code, "message": message})
        details.append(field_error(field_label(loc, english, request.url.path), message, english))
    # The top-level code is the first domain code among the field errors (invalid_id_number,
    # invalid_phone, ...), so that a client can switch on one member.
    top = next(
        (
            e["code"]
            for e in errors
            if e["code"] not in {"missing", "invalid_value"} and e["code"] in MESSAGES
        ),
        "validation_error",
    )
    if top == "invalid_json":
        top = "validation_error"
    detail = join_errors(details, english)[:500]
    return problem_response(request, 422, top, detail, extra={"errors": errors})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return problem_response(
            request,
            exc.status,
            exc.code,
            exc.detail,
            detail_en=exc.detail_en,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot read (not UTF-8, numbers past Python's digit
            # limit, nesting past the parser's depth): for a client, that is JSON it sent wrong,
            # answered as malformed JSON is: 422 `validation_error`, field error `invalid_json`.
            english = wants_english(request.headers.get("accept-language"))
            message = validation_message("json_invalid", None, english)
            return problem_response(
                request,
                422,
                "validation_error",
                field_error(field_label((), english), message, english),
                extra={"errors": [{"field": "body", "code": "invalid_json", "message": message}]},
            )
        code = _STATUS_CODES.get(
            exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error"
        )
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in {"Not Found", "Method Not Allowed"}
            else None
        )
        return problem_response(
            request, exc.status_code, code, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        import logging

        logging.getLogger("hc.errors").exception("unhandled error on %s", request.url.path)
        return problem_response(request, 500, "internal_error")
