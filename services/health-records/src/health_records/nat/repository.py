"""Every query on NAT results; never commits."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from health_records.nat.models import NatResult
from health_records.person.repository import (
    delete_rows,
    existing,
    insert_all_rows,
    insert_new_rows,
)

# The columns of a record given to insert_new, in order.
COLUMNS = (
    "report_id",
    "person_key",
    "result",
    "sample_time",
    "report_time",
    "institution",
    "received_at",
)


class NatResultRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known(self, report_ids: list[str]) -> set[str]:
        """The report ids stored already (one statement)."""
        return await existing(self.session, NatResult.__table__, "report_id", report_ids)

    async def insert_new(
        self,
        records: list[tuple[Any, ...]],
        *,
        checked: bool = False,
        whole: bool = False,
        own_savepoint: bool = True,
    ) -> set[str] | None:
        """Insert in bulk (tuples of COLUMNS), skipping known report ids; returns the report
        ids inserted. `checked`: the caller has just left out those `known` gave. `whole`:
        all or none, None when one of them is known (nothing is inserted then; with
        `own_savepoint=False` the caller rolls back a savepoint of its own, as
        insert_all_rows says)."""
        if whole:
            return await insert_all_rows(
                self.session,
                NatResult.__table__,
                COLUMNS,
                records,
                "report_id",
                own_savepoint=own_savepoint,
            )
        return await insert_new_rows(
            self.session, NatResult.__table__, COLUMNS, records, "report_id", checked=checked
        )

    async def delete(self, report_ids: list[str]) -> None:
        """Take back results this transaction stored."""
        await delete_rows(self.session, NatResult.__table__, "report_id", report_ids)
