"""`python -m venue_admin.access dead-letters | replay-dead-letters`: the access records the
consumer gave up on.

venue-admin's access-record consumer publishes a record it could not store, after its
delivery limit (`VENUE_ADMIN_ACCESS_CONSUMER_MAX_DELIVER`), or at once when it is not an
event or its payload does not fit the schema, to `dead_letter.venue_admin.<durable>` in
the `DEAD_LETTERS` stream, so that the records behind it flow.

- `dead-letters` prints how many there are and the headers of each (where it came from, how
  often it was delivered, the error's type); never a payload, which may hold a name.
- `replay-dead-letters`, once the cause is fixed (the database back, a venue-admin that
  reads the new payload), stores them with the consumer's own handler and removes the ones
  stored; those that still fail stay. Exit status: 0 when none is left, 1 otherwise.
  Storing a record twice is harmless (stored once per record id).

Both cover the dead letters of both access-record consumers: batches
(`VENUE_ADMIN_ACCESS_BATCH_CONSUMER_DURABLE`) and single records from verifiers of earlier
versions (`VENUE_ADMIN_ACCESS_CONSUMER_DURABLE`). Run with venue-admin's settings (its
database and bus). How-to: docs/operations.md ("Dead letters").
"""

import argparse
import asyncio
import sys

from nats.js.errors import NotFoundError

from hc_common.db import Database
from hc_common.events.bus import EventBus
from hc_common.events.consumer import DEAD_LETTER_STREAM
from hc_common.events.deadletters import list_dead_letters, replay_dead_letters
from hc_common.events.envelope import Envelope
from hc_common.logging import configure_logging
from venue_admin.access.handlers import store_access_records
from venue_admin.config import Settings


def _bus(settings: Settings) -> EventBus:
    # venue-admin's credentials (or the operator's), and no streams to declare: the running
    # service declares them, and a one-off run with settings that differ from the service's
    # (its replicas, its size cap) must not reconfigure them.
    return EventBus.from_settings(settings, (), name="venue-admin-dead-letters")


async def _connected(bus: EventBus, settings: Settings) -> bool:
    await bus.start()
    if await bus.wait_ready(10):
        return True
    print(f"the message bus at {settings.nats_url} is not reachable", file=sys.stderr)
    return False


def _no_stream() -> None:
    # The consumer's first dead letter needs the stream: without it there is none.
    print(f"no {DEAD_LETTER_STREAM} stream on the message bus: nothing is dead-lettered")


def _durables(settings: Settings) -> tuple[str, ...]:
    return settings.access_batch_consumer_durable, settings.access_consumer_durable


async def show(settings: Settings, limit: int) -> int:
    """Print the dead letters' count and headers, consumer by consumer; the exit status."""
    bus = _bus(settings)
    try:
        if not await _connected(bus, settings):
            return 1
        assert bus.js is not None
        for durable in _durables(settings):
            try:
                total, letters = await list_dead_letters(
                    bus.js, settings.service_name, durable, limit=limit
                )
            except NotFoundError:
                _no_stream()
                return 0
            print(f"{total} dead letters of {durable}")
            for letter in letters:
                headers = " ".join(f"{k}={v}" for k, v in sorted(letter.headers.items()))
                print(f"#{letter.sequence} {headers}")
            if total > len(letters):
                print(f"(first {len(letters)} shown)")
    finally:
        await bus.close()
    return 0


async def replay(settings: Settings) -> int:
    """Store the dead letters with the consumers' handler; the exit status."""
    db = Database(settings.effective_database_url)
    bus = _bus(settings)

    async def handle(envelopes: list[Envelope]) -> None:
        await store_access_records(db.sessionmaker, envelopes)

    try:
        if not await _connected(bus, settings):
            return 1
        assert bus.js is not None
        left = 0
        for durable in _durables(settings):
            # Validated here as by the consumer: store_access_records drops a record it
            # cannot read, and a replay that dropped one would remove its only copy.
            try:
                report = await replay_dead_letters(
                    bus.js, settings.service_name, durable, handle, validate_payloads=True
                )
            except NotFoundError:
                _no_stream()
                return 0
            print(f"replayed {report.replayed} dead letters of {durable}; left: {report.left}")
            left += report.left
    finally:
        await bus.close()
        await db.dispose()
    return 0 if left == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m venue_admin.access",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser(
        "dead-letters", help="how many access records were dead-lettered, with their headers"
    )
    listing.add_argument(
        "--limit", type=int, default=100, help="show at most this many (default 100)"
    )
    commands.add_parser(
        "replay-dead-letters", help="store the dead-lettered access records; remove the stored"
    )
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("venue-admin-dead-letters", settings.log_level)
    if args.command == "dead-letters":
        return asyncio.run(show(settings, args.limit))
    return asyncio.run(replay(settings))


if __name__ == "__main__":
    sys.exit(main())
