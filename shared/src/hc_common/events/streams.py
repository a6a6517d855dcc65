"""The system's JetStream streams, declared once: subjects, retention, limits, replicas.

Each service makes sure the streams it owns exist with this configuration at start
(`EventBus.ensure_streams`); nothing else creates or changes them. The limits follow the
contract (access records are kept 28 days) and the rates in docs/scaling.md:

- `ACCESS` carries every scan's access record to venue-admin, the store of record. A work
  queue: a record leaves the stream once venue-admin has stored and acked it. When the stream
  is full (venue-admin away for long at peak) it refuses new records (`discard: new`) rather
  than dropping unstored ones: they wait in the verifiers' journals, on disk, and are shipped
  when there is room again. Nothing older than the 28-day retention is worth keeping.
- `HEALTH` fans each status change out to every verifier. A verifier that falls behind by
  more than the stream holds loads its view again from the snapshots, so the stream needs to
  cover a mass-testing burst (8 million results in two days, ~450 bytes each: ~3.6 GB), not
  history: two days, 16 GiB, the oldest dropped first.
- `ISSUER`, `VENUES`: low volume (applications, revocations, staff and rule changes); a week.
- `DEAD_LETTERS`: what a durable consumer gave up on after its delivery limit, until an
  operator replays it (a work queue: a replayed letter leaves the stream).

`max_bytes` is reserved on the servers' disks; `NATS_STREAM_MAX_BYTES` caps every stream
(the local run sets 1 GiB), `NATS_STREAM_REPLICAS` sets the replicas (3 on a cluster).
"""

from dataclasses import dataclass
from datetime import timedelta

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from hc_common.events.envelope import STREAMS

GiB = 1024**3
# JetStream's window for dropping a republished message id (the outbox relay and the
# journal's shipper send again what was not acked).
DUPLICATE_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True)
class StreamSpec:
    name: str
    max_age: timedelta
    max_bytes: int
    discard: DiscardPolicy
    retention: RetentionPolicy = RetentionPolicy.LIMITS

    @property
    def subjects(self) -> list[str]:
        return STREAMS[self.name]

    def config(self, *, replicas: int = 1, max_bytes: int | None = None) -> StreamConfig:
        """This stream's configuration; `max_bytes` caps the declared size."""
        return StreamConfig(
            name=self.name,
            subjects=self.subjects,
            retention=self.retention,
            discard=self.discard,
            max_age=self.max_age.total_seconds(),
            max_bytes=min(self.max_bytes, max_bytes) if max_bytes else self.max_bytes,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=DUPLICATE_WINDOW.total_seconds(),
        )


SPECS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec("ISSUER", timedelta(days=7), 1 * GiB, DiscardPolicy.OLD),
        StreamSpec("VENUES", timedelta(days=7), 1 * GiB, DiscardPolicy.OLD),
        StreamSpec("HEALTH", timedelta(days=2), 16 * GiB, DiscardPolicy.OLD),
        StreamSpec(
            "ACCESS", timedelta(days=28), 64 * GiB, DiscardPolicy.NEW, RetentionPolicy.WORK_QUEUE
        ),
        StreamSpec(
            "DEAD_LETTERS",
            timedelta(days=28),
            1 * GiB,
            DiscardPolicy.NEW,
            RetentionPolicy.WORK_QUEUE,
        ),
    )
}
