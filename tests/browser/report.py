"""What the browser tests measured and where their screenshots are: printed as they go and
again in the run's summary (tests/browser/conftest.py), since pytest captures test output."""

REPORT: list[str] = []


def say(line: str) -> None:
    REPORT.append(line.strip())
    print(line)
