"""`python -m verifier.access drain DIR`: ship the access-record journal a lost replica left.

A verifier scaled in for good (its replica never comes back) leaves on its volume whatever
its stop could not ship in `VERIFIER_SHUTDOWN_SHIP_SECONDS`. Mount that volume anywhere the
verifier's settings reach NATS and run this on the journal directory (`DATA_DIR/access-spool`
or `VERIFIER_SPOOL_DIR`). It takes the journal's lock, so it refuses a directory a live
verifier holds, ships until the journal is empty or `--timeout` seconds have passed, and
prints how many records it shipped and what is left. Exit status: 0 when the journal is
empty, 1 otherwise (records left, the directory held by another process, no such
directory): run it again.

Shipping a record twice is harmless (its id is the `Nats-Msg-Id`, and venue-admin stores
by record id), so a drain cut short may simply be repeated.
"""

import argparse
import asyncio
import sys
from pathlib import Path

from hc_common.events import envelope as subjects
from hc_common.events.bus import EventBus
from hc_common.logging import configure_logging
from verifier.access.spool import SEGMENT_SUFFIX, AccessSpool, JournalLocked
from verifier.config import Settings


async def drain(directory: Path, timeout: float, settings: Settings) -> int:
    """Ship the journal in `directory`; the exit status (0: empty)."""
    found = await asyncio.to_thread(_journal_in, directory)
    if found is None:
        print(f"no such directory: {directory}", file=sys.stderr)
        return 1
    if not found:
        # Not opened, so nothing is created in a directory that is not a journal.
        print(f"no access record journal in {directory}: nothing to ship")
        return 0
    # The verifier's own user on the bus (NATS_URL, NATS_USER/NATS_PASSWORD or NATS_CREDS):
    # it may publish access records and declare their stream, nothing else.
    bus = EventBus.from_settings(settings, streams=("ACCESS",), name="verifier-drain")
    spool = AccessSpool(directory, bus, subjects.ACCESS_RECORD_BATCH)
    try:
        spool.open()
    except JournalLocked as exc:
        print(str(exc), file=sys.stderr)
        return 1
    await bus.start()  # connects in the background; the stop below waits for it
    try:
        report = await spool.stop(ship_seconds=timeout)
        reachable = bus.connected
    finally:
        await bus.close()
    print(
        f"shipped {report.shipped} access records from {directory}; "
        f"left: {report.left.records} records ({report.left.bytes} bytes)"
    )
    if report.left.bytes and not reachable:
        print(f"the message bus at {settings.nats_url} was not reachable", file=sys.stderr)
    return 0 if report.left.bytes == 0 else 1


def _journal_in(directory: Path) -> bool | None:
    """Whether `directory` holds journal segments; None if there is no such directory."""
    if not directory.is_dir():
        return None
    return any(directory.glob("*" + SEGMENT_SUFFIX))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m verifier.access",
        description="Operators' tools for the verifier's access-record journal.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    drain_command = commands.add_parser(
        "drain",
        help="ship a journal left by a verifier that is not running",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    drain_command.add_argument("directory", type=Path, help="the journal directory")
    drain_command.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="give up after this many seconds (default 120); what is left stays on disk",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("verifier-drain", settings.log_level)
    return asyncio.run(drain(args.directory, args.timeout, settings))


if __name__ == "__main__":
    sys.exit(main())
