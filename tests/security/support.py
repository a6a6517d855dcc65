"""What the security tests share: a second replica of a service on the stack's database and
bus, and a walk over an OpenAPI document's references."""

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from hc_common.devstack import Stack, free_port, service_command


def start_replica(stack: Stack, name: str) -> tuple[subprocess.Popen[bytes], str]:
    """Another process of service `name` on the stack's database and bus: its base URL."""
    port = free_port()
    (stack.run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with open(stack.run_dir / "logs" / f"{name}-replica.log", "ab") as log:
        process = subprocess.Popen(
            service_command(name, port),
            env={**os.environ, **stack.service_env(name)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} replica exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_replica(process)
            raise RuntimeError(f"the {name} replica was not ready after 90 s")
        time.sleep(0.1)


def stop_replica(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@contextmanager
def two_replicas(stack: Stack, name: str) -> Iterator[list[str]]:
    """The stack's `name` and a second replica of it on the same database: both URLs."""
    process, url = start_replica(stack, name)
    try:
        yield [stack.url(name), url]
    finally:
        stop_replica(process)


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local `$ref` names; fails the test on a dangling one."""
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    """Every `$ref` in a document."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []
