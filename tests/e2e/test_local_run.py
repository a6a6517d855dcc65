"""`make run` as a user runs it: `python -m hc_common.devstack` as a process of its own
(ports, run directory and databases of this module's), killed processes started again, the
stop on SIGTERM and on two quick Ctrl-C, and `make stop` (`python -m hc_common.devstack
stop`) against a running supervisor and against what a supervisor killed outright left."""

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hc_common.devstack import SERVICES, Stack, Supervisor, free_port
from hc_common.testing import poll, test_database_url

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTUP = 120  # a cold start of four services on a busy machine
BACK = 60  # a process started again, and ready


@dataclass
class LocalRun:
    """One `make run` after another on the same ports and run directory."""

    run_dir: Path
    ports: dict[str, int]
    nats_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    runs: int = 0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "hc_common.devstack", *args]

    def start(self) -> subprocess.Popen[bytes]:
        self.runs += 1
        self.log = self.run_dir / f"console-{self.runs}.log"
        with open(self.log, "wb") as out:
            # A session of its own, as a terminal's job would be: the signals are the test's.
            self.process = subprocess.Popen(
                self.command(),
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        assert self.process is not None
        process = self.process
        poll(lambda: "Ready in" in self.output() or process.poll() is not None, STARTUP)
        assert "Ready in" in self.output(), self.output()[-3000:]

    def wait_exit(self, timeout: float = 90) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def children(self) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.run_dir / "run.pid").read_text())["children"]
        return data

    def readyz(self, name: str) -> int | None:
        try:
            url = f"http://127.0.0.1:{self.ports[name]}/readyz"
            return httpx.get(url, timeout=5).status_code
        except httpx.HTTPError:
            return None

    def stop_command(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command("stop"),
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def leftovers(self) -> list[str]:
        """The processes of this run still there: nats-server with the run's configuration,
        uvicorn on one of the run's ports (read from /proc: no psutil in the project)."""
        conf = str(self.run_dir / "nats" / "nats.conf")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if state == "Z":
                continue
            ours = conf in argv or (
                any(a.endswith(".main:app") for a in argv)
                and any(str(p) in argv for p in self.ports.values())
            )
            if ours:
                found.append(f"{entry.name}: {' '.join(argv)}")
        return found

    def ports_in_use(self) -> list[int]:
        import socket

        busy = []
        for port in [*self.ports.values(), self.nats_port]:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    busy.append(port)
        return busy

    def assert_nothing_left(self) -> None:
        assert poll(lambda: not self.leftovers(), 10) is True, self.leftovers()
        assert poll(lambda: not self.ports_in_use(), 10) is True, self.ports_in_use()
        assert not (self.run_dir / "run.pid").exists()


@pytest.fixture(scope="module")
def local_run() -> Iterator[LocalRun]:
    run_dir = Path(tempfile.mkdtemp(prefix="hc-local-run-"))
    ports = {name: free_port() for name in SERVICES}
    nats_port = free_port()
    env = {
        **os.environ,
        "HC_RUN_DIR": str(run_dir),
        "HC_PORTS": ",".join(f"{name}={port}" for name, port in ports.items()),
        "HC_NATS_PORT": str(nats_port),
    }
    env.pop("NATS_URL", None)  # the run's own embedded NATS, always
    for service, (_package, prefix) in SERVICES.items():
        if service != "verifier":  # it keeps no database
            env[f"{prefix}_DATABASE_URL"] = test_database_url(f"local-run-{service}", run_dir)
    run = LocalRun(run_dir, ports, nats_port, env)
    try:
        yield run
    finally:
        # Whatever a failed test left: `stop` is what cleans up a run.
        if run.process is not None and run.process.poll() is None:
            run.process.send_signal(signal.SIGTERM)
            try:
                run.process.wait(90)
            except subprocess.TimeoutExpired:
                run.process.kill()
        run.stop_command()


def test_killed_processes_start_again_while_the_others_serve_and_sigterm_stops_all(
    local_run: LocalRun,
) -> None:
    run = local_run
    run.start()
    run.wait_ready()

    killed = run.children()["health-records"]
    os.kill(killed, signal.SIGKILL)
    others = [n for n in SERVICES if n != "health-records"]
    meanwhile: list[tuple[str, int | None]] = []

    def back() -> bool:
        meanwhile.extend((n, code) for n in others if (code := run.readyz(n)) != 200)
        return run.children().get("health-records") != killed and (
            run.readyz("health-records") == 200
        )

    assert poll(back, BACK, interval=0.2), run.output()[-3000:]
    assert meanwhile == [], "the other three answered /readyz 200 all along"
    assert "health-records exited with -9 (SIGKILL); starting it again" in run.output()

    nats = run.children()["nats"]
    os.kill(nats, signal.SIGKILL)
    verifier_meanwhile: list[int | None] = []

    def reconnected() -> bool:
        if (code := run.readyz("verifier")) != 200:
            verifier_meanwhile.append(code)
        # The writers' /readyz includes the bus: 200 from all four once they are back on it.
        return run.children().get("nats") != nats and all(run.readyz(n) == 200 for n in SERVICES)

    assert poll(reconnected, BACK, interval=0.2), run.output()[-3000:]
    assert verifier_meanwhile == [], "the verifier answered /readyz 200 all along"
    assert "nats exited with -9 (SIGKILL); starting it again" in run.output()
    assert "gave up" not in run.output() and "given up" not in run.output()

    children = run.children()
    assert run.process is not None
    run.process.send_signal(signal.SIGTERM)
    assert run.wait_exit() == 0, run.output()[-3000:]
    assert all(not Path(f"/proc/{pid}").exists() for pid in children.values())
    run.assert_nothing_left()


def test_a_new_run_on_the_same_ports_and_two_quick_ctrl_c_stop_it_all(
    local_run: LocalRun,
) -> None:
    run = local_run
    process = run.start()
    run.wait_ready()
    children = run.children()

    process.send_signal(signal.SIGINT)
    # The second Ctrl-C once the stop is under way (two sent at once may reach the process
    # as one: a pending signal is not queued twice).
    assert poll(lambda: "Stopping..." in run.output(), 10), run.output()[-3000:]
    process.send_signal(signal.SIGINT)
    assert run.wait_exit() == 0, run.output()[-3000:]
    assert "still stopping" in run.output()
    assert all(not Path(f"/proc/{pid}").exists() for pid in children.values())
    run.assert_nothing_left()


def test_stop_ends_a_run_started_elsewhere(local_run: LocalRun) -> None:
    run = local_run
    run.start()
    run.wait_ready()

    done = run.stop_command()
    assert done.returncode == 0, done.stdout + done.stderr
    assert run.wait_exit(10) == 0, run.output()[-3000:]
    run.assert_nothing_left()

    again = run.stop_command()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Nothing running" in again.stdout


def test_stop_cleans_up_after_a_supervisor_killed_outright(local_run: LocalRun) -> None:
    run = local_run
    process = run.start()
    run.wait_ready()
    children = run.children()

    process.kill()
    process.wait(10)
    assert len(run.leftovers()) == len(children), "its children outlive it (own sessions)"

    # A new run refuses to start over them, and says what to do.
    refused = run.start()
    assert refused.wait(60) == 1
    assert "make stop" in run.output()

    done = run.stop_command()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a supervisor that is gone left running" in done.stdout
    run.assert_nothing_left()


def _spawning(stack: Stack, programs: dict[str, str]) -> None:
    """The stack's services replaced by small Python programs (the supervision is under test,
    not the services)."""

    def start_service(name: str) -> None:
        stack._spawn(name, [sys.executable, "-c", programs[name]], dict(os.environ))

    stack.start_service = start_service  # type: ignore[method-assign]


def test_a_process_that_keeps_exiting_is_given_up_on_and_the_others_keep_serving(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path, nats_url="nats://127.0.0.1:1")  # no embedded NATS to supervise
    programs = {name: "import time; time.sleep(120)" for name in SERVICES}
    programs["verifier"] = "raise SystemExit(3)"
    _spawning(stack, programs)
    said: list[str] = []
    supervisor = Supervisor(
        stack, backoff=0.01, max_backoff=0.04, crash_limit=5, crash_window=60, say=said.append
    )
    for name in SERVICES:
        stack.start_service(name)
    sleepers = {n: p.pid for n, p in stack.processes.items() if n != "verifier"}
    try:

        def given_up() -> bool:
            supervisor.check()
            return supervisor.given_up() == ["verifier"]

        assert poll(given_up, 30, interval=0.01), said
        delays = [line.rpartition(" in ")[2] for line in said if "starting it again" in line]
        assert delays == ["0.01 s", "0.02 s", "0.04 s", "0.04 s"], said
        assert "verifier exited with 3, 5 times within 60 s: given up on" in said[-1]
        assert "The others keep serving (health-records, issuer, venue-admin)" in said[-1]
        # Not started again, and the others untouched, pass after pass.
        for _ in range(5):
            supervisor.check()
        assert "verifier" not in stack.processes
        assert {n: p.pid for n, p in stack.processes.items()} == sleepers
        assert all(p.poll() is None for p in stack.processes.values())
        assert supervisor.anything_left()
    finally:
        supervisor.stop()
    assert all(not Path(f"/proc/{pid}").exists() for pid in sleepers.values())


def test_the_run_ends_once_every_process_is_given_up_on(tmp_path: Path) -> None:
    stack = Stack(tmp_path, nats_url="nats://127.0.0.1:1")
    _spawning(stack, {name: "raise SystemExit(1)" for name in SERVICES})
    said: list[str] = []
    supervisor = Supervisor(stack, backoff=0.01, max_backoff=0.01, crash_limit=2, say=said.append)
    for name in SERVICES:
        stack.start_service(name)
    assert supervisor.serve(interval=0.01) == 1
    assert sorted(supervisor.given_up()) == sorted(SERVICES)
    assert said[-1] == "every process has been given up on: the run ends"
