"""Group commit of access records to the local outbox.

A scan hands its record to the writer and waits; the writer inserts everything that is
waiting in one transaction, then wakes every scan of that batch. So each record is on local
disk before its answer leaves, while a busy verifier pays one commit for many scans (the
batch grows with the load: while one commit runs, the next batch gathers)."""

import asyncio
import logging
from typing import Any

from hc_common.db import Database
from hc_common.events.envelope import Envelope
from sqlalchemy import insert

from verifier.db import OutboxEvent

log = logging.getLogger("verifier.access")


class AccessRecordWriter:
    def __init__(self, db: Database, *, on_commit: Any = None, max_batch: int = 2000) -> None:
        self.db = db
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="access-record-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._queue:  # what was handed over before the stop is still written
            await self._flush(self._queue)
            self._queue = []

    async def write(self, subject: str, envelope: Envelope) -> None:
        """Returns once the record is committed to the local outbox."""
        row = {"event_id": envelope.id, "subject": subject, "payload": envelope.to_bytes(),
               "created_at": envelope.occurred_at}
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                await self._flush(batch)

    async def _flush(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        for attempt in range(50):
            try:
                async with self.db.sessionmaker() as session:
                    await session.execute(insert(OutboxEvent), [row for row, _ in batch])
                    await session.commit()
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("access record write failed; retrying",
                            extra={"error": repr(exc), "attempt": attempt})
                await asyncio.sleep(0.05)
        else:
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("access record not written"))
            return
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        if self.on_commit is not None:
            self.on_commit()
