"""Reads of the other services' internal endpoints: a JSON object, `NotKnown` or `Unreachable`.

Every id put into such a URL goes through `internal_path`, which refuses anything that is not
an id of ours before a request is made: text from a scan request or a token never shapes
another service's URL (`../scan-snapshot`, a tab, a query string)."""

from typing import Any

import httpx

from hc_common.hygiene import is_id


class Unreachable(Exception):
    """The upstream did not answer usefully (down, time-out, 5xx)."""


class NotKnown(Exception):
    """The upstream answered 404, or the id asked about is not one of ours (never sent)."""


def internal_path(template: str, *ids: str) -> str:
    """`template` with its `{}` filled by `ids`, each of the system's id format; NotKnown for
    anything else (no upstream can know it)."""
    for value in ids:
        if not is_id(value):
            raise NotKnown("not an id")
    return template.format(*ids)


async def get_json(
    client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None
) -> dict[str, Any]:
    try:
        response = await client.get(path, params=params)
    # InvalidURL and StreamError are not HTTPErrors: a URL httpx refuses is no answer either.
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise Unreachable(repr(exc)) from None
    if response.status_code == 404:
        raise NotKnown(path)
    if response.status_code >= 400:
        raise Unreachable(f"{path}: {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise Unreachable(f"{path}: not JSON") from None
    if not isinstance(body, dict):
        raise Unreachable(f"{path}: not a JSON object")
    return body
