"""Reads of the other services' internal endpoints: a JSON object, `NotKnown` or `Unreachable`,
and the time budget all the reads of one scan share (`ScanBudget`).

Every id put into such a URL goes through `internal_path`, which refuses anything that is not
an id of ours before a request is made: text from a scan request or a token never shapes
another service's URL (`../scan-snapshot`, a tab, a query string)."""

import asyncio
from contextvars import ContextVar
from typing import Any

import httpx

from hc_common.hygiene import is_id


class Unreachable(Exception):
    """The upstream did not answer usefully (down, time-out, 5xx, the scan's budget spent)."""


class NotKnown(Exception):
    """The upstream answered 404, or the id asked about is not one of ours (never sent)."""


# The deadline (event-loop time) of the scan being answered in this context, None until the
# scan makes its first upstream call. A context per request (the server runs each request in
# a task of its own), so scans answered at the same time do not share a deadline; a caller
# that answers several scans in one task ends each with `ScanBudget.end()`.
_DEADLINE: ContextVar[float | None] = ContextVar("scan_deadline", default=None)


class ScanBudget:
    """The time all upstream calls of one scan may take together (the contract answers a scan
    within 2 seconds even when a service behind it hangs).

    The clock starts at the scan's first upstream call, not at the request: a scan answered
    from memory never touches it (one context-variable read when it ends). Each call is given
    what is left (`deadline()`, for `get_json` or `asyncio.timeout_at`); once it is spent a
    call fails at once as `Unreachable` and the scan goes on with what it has."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def deadline(self) -> float:
        """The current scan's deadline (event-loop time), started now if not yet."""
        deadline = _DEADLINE.get()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self.seconds
            _DEADLINE.set(deadline)
        return deadline

    def remaining(self) -> float:
        """Seconds left of the current scan's budget (zero or less: spent)."""
        return self.deadline() - asyncio.get_running_loop().time()

    @staticmethod
    def end() -> None:
        """The scan in this context is over: the next one has a budget of its own."""
        if _DEADLINE.get() is not None:
            _DEADLINE.set(None)


def internal_path(template: str, *ids: str) -> str:
    """`template` with its `{}` filled by `ids`, each of the system's id format; NotKnown for
    anything else (no upstream can know it)."""
    for value in ids:
        if not is_id(value):
            raise NotKnown("not an id")
    return template.format(*ids)


async def get_json(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str] | None = None,
    *,
    deadline: float | None = None,
) -> dict[str, Any]:
    """The JSON object at `path`; NotKnown on a 404, Unreachable for anything else that is not
    an answer, and when no answer has come by `deadline` (event-loop time; None: the client's
    own time-outs only). httpx's time-outs are per phase (connect, each read): they do not
    bound a server that trickles its answer, nor one frozen after accepting the connection.
    The deadline does."""
    if deadline is not None and deadline <= asyncio.get_running_loop().time():
        raise Unreachable(f"{path}: the scan's time budget is spent")
    try:
        async with asyncio.timeout_at(deadline):
            response = await client.get(path, params=params)
    except TimeoutError:
        raise Unreachable(f"{path}: no answer within the scan's time budget") from None
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
