from fastapi import APIRouter

from hc_common.clock import utcnow
from health_records.deps import LabDep, NatRowsDep, NatServiceDep, batch_body
from health_records.nat.schemas import NatBatch, validate_nat_rows
from health_records.person.schemas import MAX_ROWS, BatchResult

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
event per batch."""


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
    good, rejected = validate_nat_rows(rows, utcnow())
    accepted, duplicates = await service.ingest(good)
    return BatchResult(accepted=accepted, duplicates=duplicates, rejected=rejected)
