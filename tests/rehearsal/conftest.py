"""The rehearsal's figures in the run's summary (scans, answers, records, the status changes'
times, the suite's own time), whether or not pytest showed its output."""

import pytest

from tests.rehearsal.topology import REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("cluster rehearsal")
        for line in REPORT:
            terminalreporter.write_line(line)
