"""The production topology as local processes, for the rehearsal: a three-node NATS
JetStream cluster (the system's users and rights on every node), this machine's PostgreSQL,
and two replicas of every service on ports of their own, each process logging to a file.

In front of the two replicas of issuer, venue-admin and health-records stands a small
round-robin TCP proxy (`RoundRobinProxy`, what a Kubernetes Service does at connection
level): each new connection goes to the next replica, or to the other one when the next
refuses; a connection whose replica dies is closed. Every replica's `ISSUER_URL`,
`VENUE_ADMIN_URL` and `HEALTH_RECORDS_URL` name these proxies, and so do the tests' calls to
those services. The verifiers follow the streams and ship their journals through the whole
cluster (`NATS_URL` lists the three nodes).

`cluster_config` is the clustered counterpart of `hc_common.events.accounts.server_config`;
it could live there (with a deployed, `$VARIABLE`-password variant for the manifests).
"""

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hc_common.devstack import (
    ROOT,
    SERVICES,
    free_port,
    nats_server_binary,
    service_command,
    stop_group,
    wait_until_ready,
)
from hc_common.events.accounts import OPERATOR, USERS, authorization_block
from hc_common.migrations import upgrade_head
from hc_common.testing import test_database_url

CLUSTER_NAME = "hc-rehearsal"
REPLICAS = ("a", "b")
# Every stream capped small: the three nodes reserve each stream's size on this disk.
STREAM_MAX_BYTES = 64 * 1024**2
NODE_MAX_FILE_STORE = "2G"


def cluster_config(
    *,
    server_name: str,
    port: int,
    cluster_port: int,
    routes: list[int],
    store_dir: Path,
    passwords: Mapping[str, str],
    host: str = "127.0.0.1",
) -> str:
    """One node's configuration: JetStream under a name of its own, the cluster's routes
    (every node, itself included: nats-server ignores its own), the system's users."""
    route_urls = [f"nats-route://{host}:{p}" for p in routes]
    return (
        f"server_name: {json.dumps(server_name)}\n"
        f"host: {json.dumps(host)}\nport: {port}\n"
        f"jetstream {{\n  store_dir: {json.dumps(str(store_dir))}\n"
        f"  max_file_store: {NODE_MAX_FILE_STORE}\n}}\n"
        f"cluster {{\n  name: {json.dumps(CLUSTER_NAME)}\n"
        f'  listen: "{host}:{cluster_port}"\n'
        f"  routes: {json.dumps(route_urls)}\n}}\n" + authorization_block(passwords)
    )


def _spawn(argv: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a kill reaches uvicorn's children too
        )


# What the rehearsal measured, printed as it goes and again in the run's summary (a slow suite
# says what it did even when pytest captures its output: tests/rehearsal/conftest.py).
REPORT: list[str] = []


def say(line: str) -> None:
    REPORT.append(line.strip())
    print(line)


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "nats.log"


@dataclass
class NatsCluster:
    """Three nats-servers routed to each other, JetStream clustered over them."""

    directory: Path
    nodes: list[NatsNode] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        self.nodes = [
            NatsNode(f"n{i}", free_port(), free_port(), self.directory / f"n{i}") for i in (1, 2, 3)
        ]

    @property
    def url(self) -> str:
        """The cluster as a service's `NATS_URL`: every node, comma-separated."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def start_node(self, node: NatsNode) -> None:
        store = node.directory / "store"
        store.mkdir(parents=True, exist_ok=True)
        config = node.directory / "nats.conf"
        config.write_text(
            cluster_config(
                server_name=node.name,
                port=node.port,
                cluster_port=node.cluster_port,
                routes=[n.cluster_port for n in self.nodes],
                store_dir=store,
                passwords=self.passwords,
            )
        )
        config.chmod(0o600)
        node.process = _spawn([nats_server_binary(), "-c", str(config)], os.environ, node.log)

    def start(self, timeout: float = 30) -> None:
        for node in self.nodes:
            self.start_node(node)
        asyncio.run(self._wait_jetstream(timeout))

    async def _wait_jetstream(self, timeout: float) -> None:
        """Until JetStream answers on every node (the cluster has elected its meta leader)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while True:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"nats {node.name} exited; log: {node.log}")
                try:
                    nc = await self.connect(node.url)
                    try:
                        await nc.jetstream(timeout=2).account_info()
                        break
                    finally:
                        await nc.close()
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"JetStream not clustered after {timeout} s; log: {node.log}"
                        ) from None
                    await asyncio.sleep(0.2)

    async def connect(self, url: str | None = None) -> Any:
        import nats

        return await nats.connect(
            (url or self.url).split(","),
            user=OPERATOR,
            password=self.passwords[OPERATOR],
            connect_timeout=2,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.2,
        )

    def stream_leader(self, stream: str, wait: bool = True) -> str:
        """The server name of the node that leads `stream` (the operator asks the cluster);
        without `wait`, "" while it has none (an election under way) or does not answer."""

        async def ask() -> str:
            nc = await self.connect()
            try:
                info = await nc.jetstream(timeout=2).stream_info(stream)
                return str(info.cluster.leader or "") if info.cluster is not None else ""
            finally:
                await nc.close()

        try:
            leader = asyncio.run(ask())
        except Exception:
            if wait:
                raise
            return ""
        if wait and not leader:
            raise RuntimeError(f"stream {stream} has no leader")
        return leader

    def kill(self, node: NatsNode) -> None:
        stop_group(node.process, signal.SIGKILL)

    def stop(self) -> None:
        for node in self.nodes:
            stop_group(node.process, grace=30)


class RoundRobinProxy:
    """A TCP proxy on a port of its own, spreading connections over `ports` in turn, in a
    thread with its own event loop."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        # Bound now and kept (a port merely found free was taken by another process before
        # the proxy started, once, in CI): the replicas are told this port before it serves.
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, sock=self._socket), self._loop
        ).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.ports:
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue  # that replica is down: the next one
        else:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream[1]), self._pipe(upstream[0], writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@dataclass
class Replica:
    service: str
    replica: str
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.replica}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Topology:
    """The NATS cluster, the databases, and two replicas of every service."""

    run_dir: Path
    nats: NatsCluster = field(init=False)
    databases: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(default_factory=dict)
    proxies: dict[str, RoundRobinProxy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nats = NatsCluster(self.run_dir / "nats")
        for service in SERVICES:
            for replica in REPLICAS:
                name = f"{service}-{replica}"
                self.replicas[name] = Replica(
                    service,
                    replica,
                    free_port(),
                    self.run_dir / "data" / name,
                    self.run_dir / "logs" / f"{name}.log",
                )
            if service != "verifier":  # the scans name their verifier replica themselves
                self.proxies[service] = RoundRobinProxy(
                    [self.replicas[f"{service}-{r}"].port for r in REPLICAS]
                )

    def url(self, service: str) -> str:
        """Where a service is reached: its proxy."""
        return self.proxies[service].url

    def logs(self) -> list[Path]:
        return [node.log for node in self.nats.nodes] + [r.log for r in self.replicas.values()]

    def setup_databases(self) -> None:
        """A fresh database per service that keeps one (PostgreSQL: the rehearsal is the
        production topology), migrated as `Stack.migrate` does."""
        for service in SERVICES:
            root = ROOT / "services" / service
            if (root / "alembic.ini").exists():
                url = test_database_url(f"rehearsal-{service}", self.run_dir)
                upgrade_head(root, url)
                self.databases[service] = url

    def env(self, replica: Replica) -> dict[str, str]:
        """A replica's environment, as `Stack.service_env` builds one, on the cluster."""
        env = {
            **os.environ,
            "APP_ENV": "dev",
            "DATA_DIR": str(replica.data_dir),
            "NATS_URL": self.nats.url,
            "NATS_USER": replica.service,
            "NATS_PASSWORD": self.nats.passwords[replica.service],
            "NATS_STREAM_REPLICAS": "3",
            "NATS_STREAM_MAX_BYTES": str(STREAM_MAX_BYTES),
            "ISSUER_URL": self.url("issuer"),
            "VENUE_ADMIN_URL": self.url("venue-admin"),
            "HEALTH_RECORDS_URL": self.url("health-records"),
            # Sub-admins are hired with codes: 3 s between codes to one number, not a minute.
            "VENUE_ADMIN_OTP_MIN_INTERVAL_SECONDS": "3",
            "ISSUER_OTP_MIN_INTERVAL_SECONDS": "3",
        }
        if replica.service in self.databases:
            env["DATABASE_URL"] = self.databases[replica.service]
        else:
            env.pop("DATABASE_URL", None)
        return env

    def start_replica(self, replica: Replica) -> None:
        replica.data_dir.mkdir(parents=True, exist_ok=True)
        replica.process = _spawn(
            service_command(replica.service, replica.port), self.env(replica), replica.log
        )

    def start(self, timeout: float = 120) -> None:
        if not os.environ.get("TEST_DATABASE_URL_PREFIX"):  # a failure, never a skip
            raise RuntimeError(
                "the rehearsal runs on PostgreSQL: set TEST_DATABASE_URL_PREFIX "
                "(make rehearsal does: postgresql://postgres@127.0.0.1:5432/hc_test_)"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for proxy in self.proxies.values():
            proxy.start()
        self.nats.start()
        self.setup_databases()
        # Replicas "a" first: they are everyone's upstreams, and the first of each service
        # declares its streams on the cluster.
        for replica in REPLICAS:
            for r in self.replicas.values():
                if r.replica == replica:
                    self.start_replica(r)
        self.wait_ready(list(self.replicas), timeout)

    def wait_ready(self, names: list[str], timeout: float) -> None:
        replicas = {name: self.replicas[name] for name in names}
        wait_until_ready(
            {name: r.url for name, r in replicas.items()},
            {name: r.process for name, r in replicas.items()},
            timeout,
            where=lambda name: f"; log: {replicas[name].log}",
        )

    def kill(self, name: str) -> None:
        """SIGKILL: a replica lost, nothing shut down gracefully."""
        stop_group(self.replicas[name].process, signal.SIGKILL)

    def stop(self) -> None:
        """Every replica stopped gracefully at once (verifiers ship their journals for up to
        8 s), then the cluster."""
        running = [r.process for r in self.replicas.values() if r.process is not None]
        for process in running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in running:
            stop_group(process, grace=30)  # signalled above: waits, then kills
        self.nats.stop()
        for proxy in self.proxies.values():
            proxy.stop()
