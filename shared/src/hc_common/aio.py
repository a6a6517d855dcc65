"""Small asyncio helpers.

`asyncio.wait_for` on Python 3.11 can swallow a cancellation that arrives as the awaited
thing completes, leaving a background task that will not stop (seen: an outbox relay
"cancelling" forever, and a test run hanging on it). `asyncio.timeout` does not."""

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def gather_settled(*awaitables: Awaitable[T]) -> list[T]:
    """`asyncio.gather`, but an error leaves only once every awaitable has finished (the
    first error raised): with plain gather, one query's failure left the other still running
    on a connection its caller then gave back to the pool."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exception among them


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


async def stop_task(task: asyncio.Task[object] | None, timeout: float = 5.0) -> None:
    """Cancel a background task and wait for it to end, cancelling again while it runs on.

    One `cancel()` is not always enough: a library may absorb the CancelledError (seen with
    a database session closing under cancellation), and the task then runs its loop again as
    if nothing happened. So cancel is repeated until the task is done, up to `timeout`."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.done():
        logging.getLogger("hc.aio").warning("task did not stop", extra={"task": task.get_name()})
