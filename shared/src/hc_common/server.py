"""The services' HTTP/1.1 protocol for uvicorn: httptools, with a response's writes coalesced
and the keep-alive timer armed once per idle spell instead of once per response.

uvicorn writes a response's status line and headers as soon as the app sends
`http.response.start`, and its body when the app sends `http.response.body`: two `send()`
system calls for every small JSON answer. On the scan (a few hundred bytes answered in
~50 us of CPU) the second call was about a tenth of the verifier's time. Here the writes one
step of the event loop makes to a connection are held and handed to the socket together at
the end of that step (`loop.call_soon`): one system call a response, the same bytes in the
same order, and a streamed body (the CSV export) still leaves chunk by chunk, each in the
step that made it.

uvicorn also arms a timer (`call_later`) after every response to close a connection left
idle for `--timeout-keep-alive` seconds, and cancels it when the next request arrives: a
timer made and cancelled per request, ~5 % of a bare request's cost. Here the timer is armed
when a response completes and none is armed, and when it fires it closes the connection only
if it has been idle for the whole time since its last response; otherwise it is armed again
for what is left (or not at all while a request is in progress: the next response arms it).

Run with `uvicorn --http hc_common.server:HttpProtocol` (devstack, deploy/entrypoint.sh).
"""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """A transport whose writes within one step of the event loop go out as one.

    Everything but `write` is the wrapped transport's; `close` first hands over what is held
    (uvicorn closes a connection right after the last write of a `Connection: close`
    answer), `abort` drops it with the connection."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = [data]
            self._loop.call_soon(self._flush)
        else:
            held.append(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (
            sum(len(data) for data in held) if held else 0
        )

    def __getattr__(self, name: str) -> Any:
        # get_extra_info, is_closing, pause_reading, resume_reading, ...: the socket's own.
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`, with a lazy keep-alive timer
    (`on_response_complete` is uvicorn 0.54's, but for the timer)."""

    # The event loop's time when the last response completed; None while a request is in
    # progress (uvicorn calls `_unset_keepalive_if_required` when data arrives).
    _idle_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy: an armed timer finds it so and is not renewed

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        timer, self.timeout_keep_alive_task = self.timeout_keep_alive_task, None
        if timer is not None:
            timer.cancel()  # not left holding the connection until it fires

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive_expired
            )

    def _keep_alive_expired(self) -> None:
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return  # a request in progress: its response arms the timer again
        idle = self.loop.time() - self._idle_since
        if idle >= self.timeout_keep_alive:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive - idle, self._keep_alive_expired
            )
