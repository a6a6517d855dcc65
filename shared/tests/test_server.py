"""The services' HTTP protocol (hc_common.server): a response's writes within one step of
the event loop reach the socket as one, in order; a streamed body still leaves step by step;
a close hands over what is held first; and uvicorn serves with it as before (keep-alive,
`Connection: close`, a streamed body), checked over a real socket."""

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from hc_common.server import CoalescingTransport, HttpProtocol
from hc_common.testing import eventually


class Socket(asyncio.Transport):
    """A transport that keeps what it is given, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 5)}.get(name, default)


async def next_step() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_the_writes_of_one_step_reach_the_socket_as_one() -> None:
    raw = Socket()
    transport = CoalescingTransport(raw, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.writes == [] and transport.get_write_buffer_size() == 40
    await next_step()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")  # a later step: a write of its own
    await next_step()
    assert raw.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 5)


async def test_a_close_hands_over_what_is_held_and_an_abort_drops_it() -> None:
    loop = asyncio.get_running_loop()
    closed, aborted = Socket(), Socket()
    one, other = CoalescingTransport(closed, loop), CoalescingTransport(aborted, loop)
    one.write(b"head")
    one.write(b"body")
    one.close()
    assert closed.writes == [b"headbody"] and closed.closed
    other.write(b"lost with the connection")
    other.abort()
    await next_step()
    assert aborted.writes == [] and aborted.aborted
    await next_step()
    assert closed.writes == [b"headbody"]  # the step's own flush finds nothing more


async def small(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def streamed(request: Request) -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        for n in range(200):
            await asyncio.sleep(0)
            yield b"%d,row\n" % n

    return StreamingResponse(rows(), media_type="text/csv")


@asynccontextmanager
async def serving(app: Starlette, **config: Any) -> AsyncIterator[int]:
    """uvicorn with the services' protocol serving `app` on a free port of 127.0.0.1 (the
    port), `config` its further settings."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    running = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            http=HttpProtocol,
            log_level="warning",
            lifespan="off",
            **config,
        )
    )
    task = asyncio.create_task(running.serve())

    async def started() -> bool:
        return bool(running.started)

    assert await eventually(started, timeout=10, interval=0.01)
    try:
        yield port
    finally:
        running.should_exit = True
        await task


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = Starlette(routes=[Route("/small", small), Route("/streamed", streamed)])
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}"


async def test_uvicorn_serves_keep_alive_close_and_streamed_answers_whole(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for _ in range(20):  # one connection, kept alive
            answer = await client.get("/small")
            assert answer.status_code == 200 and answer.json() == {"ok": True}
        closing = await client.get("/small", headers={"Connection": "close"})
        assert closing.json() == {"ok": True} and closing.headers["connection"] == "close"
        rows = await client.get("/streamed")
        assert rows.text.splitlines() == [f"{n},row" for n in range(200)]


@pytest.fixture
async def quick_keep_alive() -> AsyncIterator[int]:
    """A server whose idle connections are closed after 0.3 s; its port."""
    # uvicorn takes the seconds as a float, whatever its annotation says.
    async with serving(Starlette(routes=[Route("/small", small)]), timeout_keep_alive=0.3) as port:
        yield port


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /small HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
    return await reader.readexactly(length)


async def test_a_connection_idle_past_the_keep_alive_is_closed_and_a_busy_one_is_not(
    quick_keep_alive: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_keep_alive)
    try:
        # Busy for 1 s, a request every 0.1 s: more than three keep-alive timeouts in all,
        # never idle for one.
        for _ in range(10):
            assert await ask(reader, writer) == b'{"ok":true}'
            await asyncio.sleep(0.1)
        # Then idle: closed by the server (well within the 5 s this waits).
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    finally:
        writer.close()
