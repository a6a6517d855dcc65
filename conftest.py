"""Fixtures every test folder shares: a NATS server for the session."""

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from hc_common.devstack import free_port, nats_server_binary


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """`TEST_NATS_URL` (a real NATS, e.g. the machine's) or an embedded nats-server with
    JetStream on a free port, for the whole session."""
    external = os.environ.get("TEST_NATS_URL")
    if external:
        yield external
        return
    port = free_port()
    store = tempfile.mkdtemp(prefix="hc-nats-")
    process = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js",
                                "-sd", store], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """`kill -USR1 <pytest pid>`: print every asyncio task's stack (to find a hang)."""
    import asyncio
    import sys

    try:
        loop = asyncio._get_running_loop()
        for task in asyncio.all_tasks(loop) if loop else ():
            print(f"--- {task.get_name()} {task.get_coro()}", file=sys.__stderr__)
            task.print_stack(file=sys.__stderr__)
    except Exception as exc:  # never let a diagnostic fail the test
        print(f"task dump failed: {exc!r}", file=sys.__stderr__)


signal.signal(signal.SIGUSR1, _dump_asyncio_tasks)
