"""The verifier's scale-out curve: scans a second with N replicas, N = 1, 2, 4, ... as far as
the machine's cores allow, each replica its own process and journal (one health-records,
issuer, venue-admin and NATS behind them, as in bench_verifier), each driven by its own wrk.

Replica i runs alone on core i (`taskset`); the load generators get the cores no replica
has (floating over all of them when every core has a replica, as on a 2-core machine) and
their own CPU use is reported, so a curve flattened by the load generators shows as such.
Also what access records ask of the `ACCESS` stream: a record's bytes, and the messages (batch
events of up to 200 records) a second at a province's peak (docs/scaling.md).

    .venv/bin/python -m tests.bench scaleout   # BENCH_MAX_REPLICAS (default: half the
                                               # cores, at least 2), BENCH_SECONDS
"""

import os
import resource
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hc_common.devstack import Stack, free_port, service_command, stop_group, wait_until_ready
from tests.bench.bench_verifier import (
    a_scan,
    bench_stack,
    cores,
    cpu_seconds,
    pin,
    warm_up,
    wrk_command,
    wrk_rate,
    wrk_script,
)
from verifier.access.spool import AccessSpool

SECONDS = int(os.environ.get("BENCH_SECONDS", 6))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 2))


def max_replicas() -> int:
    configured = os.environ.get("BENCH_MAX_REPLICAS")
    wanted = int(configured) if configured else max(2, len(cores()) // 2)
    return max(1, min(wanted, len(cores())))


def replica_counts(most: int) -> list[int]:
    """1, 2, 4, ... up to `most` (and `most` itself)."""
    counts, n = [], 1
    while n < most:
        counts.append(n)
        n *= 2
    return [*counts, most]


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    core: int
    journal: Path


def start_replicas(stack: Stack, count: int) -> list[Replica]:
    """The stack's verifier and `count - 1` more, each with its own port and journal."""
    all_cores = cores()
    replicas = [
        Replica(
            stack.url("verifier"),
            stack.processes["verifier"],
            all_cores[0],
            stack.data_dir / "access-spool",
        )
    ]
    for i in range(1, count):
        port, data = free_port(), stack.run_dir / f"replica-{i}"
        env = {**stack.service_env("verifier"), "DATA_DIR": str(data)}
        log = open(stack.run_dir / "logs" / f"verifier-{i}.log", "ab")
        process = subprocess.Popen(
            service_command("verifier", port),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        replicas.append(
            Replica(f"http://127.0.0.1:{port}", process, all_cores[i], data / "access-spool")
        )
    wait_until_ready({r.url: r.url for r in replicas[1:]}, {}, 120)
    return replicas


def pin_everything(stack: Stack, replicas: list[Replica]) -> set[int]:
    """Each replica on its core; the rest of the stack (and this script) on the other cores,
    or on all of them when every core has a replica. Returns the load generators' cores."""
    taken = {r.core for r in replicas}
    rest = set(cores()) - taken or set(cores())
    os.sched_setaffinity(0, rest)
    for name, process in stack.processes.items():
        if name != "verifier":
            pin(process.pid, rest)
    for replica in replicas:
        pin(replica.process.pid, {replica.core})
    return rest


@dataclass
class Point:
    replicas: int
    rate: float  # scans a second, all replicas
    per_replica: list[float]
    cpu_us: list[float]  # each replica's CPU per scan
    load_cores: float  # the load generators' CPU use, in cores


def drive(replicas: list[Replica], script: Path, load: set[int]) -> Point:
    """One wrk per replica, all at once, for SECONDS."""
    floating = load == set(cores())
    before_cpu = [cpu_seconds(r.process.pid) for r in replicas]
    before_load = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    runs = []
    for replica in replicas:
        command = wrk_command(replica.url + "/v1/verify", script, None, SECONDS)
        if not floating:
            command = ["taskset", "-c", ",".join(map(str, sorted(load))), *command]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
    outputs = [run.communicate()[0] for run in runs]
    elapsed = time.monotonic() - started
    after_load = resource.getrusage(resource.RUSAGE_CHILDREN)
    rates = [wrk_rate(out) for out in outputs]
    used = [cpu_seconds(r.process.pid) - b for r, b in zip(replicas, before_cpu, strict=True)]
    load_seconds = (after_load.ru_utime - before_load.ru_utime) + (
        after_load.ru_stime - before_load.ru_stime
    )
    return Point(
        len(replicas),
        sum(rates),
        rates,
        [u / (rate * SECONDS) * 1e6 for u, rate in zip(used, rates, strict=True)],
        load_seconds / elapsed,
    )


def record_bytes(journal: Path) -> float:
    """The mean size of an access record in a replica's journal (lines `<record id>
    <record JSON>`): what it adds to a batch event on `ACCESS` (plus a comma)."""
    sizes = []
    for segment in sorted(journal.glob("*.log")):
        for line in segment.read_bytes().splitlines()[:1000]:
            sizes.append(len(line.partition(b" ")[2]))
    return statistics.mean(sizes) if sizes else 0.0


def main() -> None:
    most = max_replicas()
    stack = bench_stack("bench-scaleout-")
    replicas: list[Replica] = []
    try:
        stack.start(120)
        headers, body, _ = a_scan(stack)
        replicas = start_replicas(stack, most)
        for replica in replicas:
            warm_up(replica.url, headers, body)
        load = pin_everything(stack, replicas)
        where = "floating over every core" if load == set(cores()) else f"on cores {sorted(load)}"
        print(
            f"{len(cores())} cores; replica i pinned to core i (taskset), the load generators "
            f"(one wrk -t1 -c32 -d{SECONDS}s per replica, closed loop) and the rest {where}; "
            f"best of {ROUNDS} rounds"
        )
        script = wrk_script(body, headers)
        curve = []
        for n in replica_counts(most):
            point = max(
                (drive(replicas[:n], script, load) for _ in range(ROUNDS)), key=lambda p: p.rate
            )
            curve.append(point)
            print(
                f"  N={n}: {point.rate:.0f} scans/s ({point.rate / n:.0f} per replica: "
                f"{[round(r) for r in point.per_replica]}), replica CPU per scan "
                f"{[round(c) for c in point.cpu_us]} us, load generators "
                f"{point.load_cores:.2f} cores"
            )
        one = curve[0].rate
        steps = [
            f"N={p.replicas} {p.rate / one:.2f}x ({p.rate / one / p.replicas:.0%} of linear)"
            for p in curve
        ]
        print("  scaling: " + ", ".join(steps))
        size = record_bytes(replicas[0].journal)
        pack = AccessSpool.__init__.__kwdefaults__["pack"]
        print(
            f"access records on ACCESS: {size:.0f} bytes a record, in batch events of up to "
            f"{pack} (~{(size + 1) * pack / 1024:.0f} KiB); at 120,000 scans/s: "
            f"{120_000 * size / 1e6:.0f} MB/s of payload in {120_000 / pack:.0f} messages/s"
        )
    finally:
        for replica in replicas[1:]:
            stop_group(replica.process)
        stack.stop()


if __name__ == "__main__":
    main()
