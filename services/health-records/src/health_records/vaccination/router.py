from fastapi import APIRouter

from hc_common.clock import utcnow
from health_records.deps import (
    VaccinationRowsDep,
    VaccinationServiceDep,
    VaccinationSiteDep,
    batch_body,
)
from health_records.nat.router import BATCH_RULES, valid_indexes, with_refused
from health_records.person.schemas import BatchResult
from health_records.person.service import collector_paused
from health_records.vaccination.schemas import VaccinationBatch, validate_vaccination_rows

router = APIRouter(tags=["vaccinations"])


@router.post(
    "/v1/vaccinations/batch",
    response_model=BatchResult,
    dependencies=[VaccinationSiteDep],
    summary="Push a batch of vaccination records (vaccination site)",
    description=BATCH_RULES
    + """

A row whose `record_id` is known (from an earlier batch or earlier in the same batch) is
counted in `duplicates` and changes nothing. `dose_number` is an integer from 1 to 10. A
person's vaccination summary is `doses` = the highest `dose_number` reported for them and
`last_dose_at` = the latest `administered_at`.""",
    openapi_extra=batch_body(VaccinationBatch),
)
async def push_vaccinations(
    rows: VaccinationRowsDep, service: VaccinationServiceDep
) -> BatchResult:
    with collector_paused:  # a batch makes no cycles: no collector passes over its rows
        good, rejected = validate_vaccination_rows(rows, utcnow())
        done = await service.ingest(good, valid_indexes(len(rows), rejected))
    return BatchResult(
        accepted=done.accepted,
        duplicates=done.duplicates,
        rejected=with_refused(rejected, done.refused),
    )
