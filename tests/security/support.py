"""What the security tests share: a second replica of a service on the stack's database and
bus, and a walk over an OpenAPI document's references."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hc_common.devstack import Stack, free_port, service_command, stop_group, wait_until_ready


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
    try:
        wait_until_ready({f"the {name} replica": url}, {f"the {name} replica": process}, 90)
    except RuntimeError:
        stop_replica(process)
        raise
    return process, url


def stop_replica(process: subprocess.Popen[bytes]) -> None:
    stop_group(process, grace=15)


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
