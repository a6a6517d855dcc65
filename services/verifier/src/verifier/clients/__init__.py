"""Reads of the other services' internal endpoints: a JSON object, `NotKnown` or `Unreachable`."""

from typing import Any

import httpx


class Unreachable(Exception):
    """The upstream did not answer usefully (down, time-out, 5xx)."""


class NotKnown(Exception):
    """The upstream answered 404."""


async def get_json(
    client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None
) -> dict[str, Any]:
    try:
        response = await client.get(path, params=params)
    except httpx.HTTPError as exc:
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
