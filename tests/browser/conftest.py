"""The browser tests drive Debian's Chromium (`/usr/bin/chromium`) with Playwright; its own
browser downloads are not used. Without that Chromium the tests are skipped, and the run's
summary says so in a section of its own: they must never be missed silently (CI installs
Chromium first, so there they always run)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.browser.report import REPORT, say

CHROMIUM = os.environ.get("HC_CHROMIUM", "/usr/bin/chromium")
HERE = Path(__file__).parent
ROOT = HERE.parents[1]
MISSING = f"BROWSER TESTS NOT RUN: {CHROMIUM} missing; apt-get install chromium"
_skipped = pytest.StashKey[list[str]]()


def chromium_present() -> bool:
    return os.access(CHROMIUM, os.X_OK)


def _is_browser_test(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_present():
        return
    skip = pytest.mark.skip(reason=MISSING)
    for item in items:
        if _is_browser_test(item):
            item.add_marker(skip)
            config.stash.setdefault(_skipped, []).append(item.nodeid)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    if REPORT:
        terminalreporter.section("browser tests: measurements and screenshots")
        for line in REPORT:
            terminalreporter.write_line(line)
    skipped = config.stash.get(_skipped, [])
    if skipped:
        terminalreporter.section(MISSING, sep="!", red=True, bold=True)
        terminalreporter.line(f"{len(skipped)} browser tests skipped:", red=True, bold=True)
        for nodeid in skipped:
            terminalreporter.line(f"  {nodeid}", red=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the screenshots go: `.run/browser-artifacts/<time>/` (printed by each test)."""
    directory = ROOT / ".run" / "browser-artifacts" / time.strftime("%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    latest = directory.parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink() if latest.is_symlink() else shutil.rmtree(latest)
    latest.symlink_to(directory.name)
    say(f"\nbrowser artifacts: {directory}")
    return directory
