from fastapi import APIRouter, Request

from hc_common.clock import cst_today, utcnow
from health_records.batch import BatchResult, read_rows, validate_rows
from health_records.deps import VaccinationServiceDep, VaccinationSiteDep
from health_records.nat.router import BATCH_RULES
from health_records.vaccination.schemas import (
    VaccinationBatch,
    VaccinationRow,
    row_checks,
    row_rule,
)

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
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": VaccinationBatch.model_json_schema(
                        ref_template="#/components/schemas/{model}"
                    )
                }
            },
        }
    },
)
async def push_vaccinations(request: Request, service: VaccinationServiceDep) -> BatchResult:
    rows = await read_rows(request, "records")
    good, rejected = validate_rows(rows, row_checks(cst_today()), row_rule(utcnow()))
    accepted, duplicates = await service.ingest([VaccinationRow(*values) for values in good])
    await service.persons.session.commit()
    request.app.state.runtime.notify_outbox()
    return BatchResult(accepted=accepted, duplicates=duplicates, rejected=rejected)
