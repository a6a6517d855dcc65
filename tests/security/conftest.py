"""The security suite's own pytest plumbing: the `fuzz` marker, and the API fuzzer's summary
(operations covered per service, examples, failures, wall time) printed at the end of the run."""

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: the property-based API fuzzer (Schemathesis) over every service"
    )


@dataclass
class FuzzReport:
    """What the fuzzer did, operation by operation ("issuer POST /v1/auth/otp")."""

    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    # making the fuzzer's user, credentials, venue, staff and gates
    setup_seconds: float = 0.0
    # how it fuzzes: examples per operation, checks
    settings: str = ""
    # service -> every operation of its document
    operations: dict[str, list[str]] = field(default_factory=dict)
    # "service METHOD /path" -> requests sent (examples, replays of a failure included)
    examples: Counter[str] = field(default_factory=Counter)
    # "service METHOD /path" -> status code -> answers
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    # "service METHOD /path" -> failure title -> what failed, the request and the answer (the
    # last one seen: Hypothesis replays the minimal failing example last)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    # "service METHOD /path" -> why it is not fuzzed, or what it is fuzzed with besides
    notes: dict[str, str] = field(default_factory=dict)

    def record_failure(self, operation: str, title: str, details: str) -> None:
        self.failures.setdefault(operation, {})[title] = details

    def lines(self) -> list[str]:
        wall = (self.finished or time.monotonic()) - self.started
        covered = [op for ops in self.operations.values() for op in ops if self.examples[op]]
        lines = [
            f"operations covered: {len(covered)} of "
            f"{sum(len(ops) for ops in self.operations.values())}; "
            f"examples (requests checked): {sum(self.examples.values())}; "
            f"operations failing: {len(self.failures)}; "
            f"wall time: {wall:.1f} s ({self.setup_seconds:.1f} s of it setting up)"
        ]
        if self.settings:
            lines.append(self.settings)
        for service, ops in self.operations.items():
            done = [op for op in ops if self.examples[op]]
            lines.append(
                f"  {service}: {len(done)}/{len(ops)} operations, "
                f"{sum(self.examples[op] for op in ops)} examples"
            )
            for op in done:
                answers = " ".join(
                    f"{status}×{count}" for status, count in sorted(self.statuses[op].items())
                )
                lines.append(f"    {op.split(' ', 1)[1]}: {answers}")
        not_run = [op for ops in self.operations.values() for op in ops if not self.examples[op]]
        for op in not_run:
            lines.append(f"  NOT FUZZED {op}: {self.notes.get(op, 'no example ran')}")
        for op, note in self.notes.items():
            if op not in not_run:
                lines.append(f"  note {op}: {note}")
        for op, found in self.failures.items():
            for title, details in found.items():
                details = details.replace("\n", "\n      ")
                lines.append(f"  FAIL {op}: {title}: {details}")
        return lines


_REPORT = pytest.StashKey[FuzzReport]()


@pytest.fixture(scope="session")
def fuzz_report(request: pytest.FixtureRequest) -> Iterator[FuzzReport]:
    report = FuzzReport()
    request.config.stash[_REPORT] = report
    yield report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(_REPORT, None)
    if report is None:
        return
    terminalreporter.section("API fuzz (Schemathesis)")
    for line in report.lines():
        terminalreporter.write_line(line)
