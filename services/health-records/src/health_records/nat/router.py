from fastapi import APIRouter

from hc_common.clock import utcnow
from hc_common.errors import title_for
from hc_common.i18n import english
from health_records.deps import LabDep, NatRowsDep, NatServiceDep, batch_body
from health_records.nat.schemas import NatBatch, validate_nat_rows
from health_records.person.schemas import MAX_ROWS, BatchResult, RejectedRow
from health_records.person.service import NAME_MISMATCH, collector_paused

router = APIRouter(tags=["nat-results"])

BATCH_RULES = f"""At most {MAX_ROWS:,} rows and 16 MiB a batch (more rows: 422 `validation_error`
with the field error `too_many_rows`, and nothing is stored; a bigger body: 413). Each row is
validated alone: a bad row is listed in `rejected` with its `index` (0-based, in the order
sent) and a `code` (`invalid_id_number`, `missing`, `invalid_value`), and the other rows are
kept. Times are RFC 3339 text with an offset (a time without one, or a number, is
`invalid_value`); a time more than 5 minutes in the future is `invalid_value`. Text fields are
trimmed, must not be empty and must not hold a control character (`invalid_value`); ID numbers
are 17 ASCII digits and a check character (`invalid_id_number`). The batch is stored in one
transaction. Every person whose status changes gets one new status `version` and one status
event per batch.

A valid row whose `name` is not the name the system holds for its ID number is rejected alone
with `name_mismatch` (a mistyped ID number must not give one person another's record; the
other rows are kept). Names are compared after Unicode NFKC normalisation (full-width and
half-width forms are the same letters) with surrounding spaces stripped. A person without a
name on file (new, or known only by their ID number) is named by their first row in the
batch, in the order sent; the batch's other rows for them under another name are
`name_mismatch`. A duplicate row (a known id) is counted in `duplicates` whatever its name."""


@router.post(
    "/v1/nat-results/batch",
    response_model=BatchResult,
    dependencies=[LabDep],
    summary="Push a batch of NAT results (lab)",
    description=BATCH_RULES
    + """

A row whose `report_id` is known (from an earlier batch or earlier in the same batch) is
counted in `duplicates` and changes nothing, even if its other fields differ. The person's
NAT status is their result with the latest `sample_time` (a later `report_time` breaks a
tie); an older result is stored but does not change the status. A positive latest result
shows the code red whatever the authority set; a later negative result gives back the
authority's colour. `report_time` before `sample_time` is `invalid_value`.""",
    openapi_extra=batch_body(NatBatch),
)
async def push_nat_results(rows: NatRowsDep, service: NatServiceDep) -> BatchResult:
    with collector_paused:  # a batch makes no cycles: no collector passes over its rows
        good, rejected = validate_nat_rows(rows, utcnow())
        done = await service.ingest(good, valid_indexes(len(rows), rejected))
    return BatchResult(
        accepted=done.accepted,
        duplicates=done.duplicates,
        rejected=with_refused(rejected, done.refused),
    )


def valid_indexes(count: int, rejected: list[RejectedRow]) -> list[int]:
    """The places in the batch of its valid rows (those not `rejected`), in order."""
    if not rejected:
        return list(range(count))
    bad = {row.index for row in rejected}
    return [index for index in range(count) if index not in bad]


def with_refused(rejected: list[RejectedRow], refused: list[int]) -> list[RejectedRow]:
    """The rows rejected by validation and those refused for their name, by index."""
    if not refused:
        return rejected
    detail = title_for(NAME_MISMATCH, english())
    mismatched = [RejectedRow(index=index, code=NAME_MISMATCH, detail=detail) for index in refused]
    return sorted(rejected + mismatched, key=lambda row: row.index)
