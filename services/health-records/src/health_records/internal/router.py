"""What the other services of the system ask health-records (the service key): subject ids
and live statuses."""

from typing import Annotated

from fastapi import APIRouter, Path

from hc_common.deps import ServiceKeyDep
from hc_common.hygiene import ID_PATTERN, require_id
from health_records.deps import PersonServiceDep
from health_records.person.schemas import (
    Status,
    StatusList,
    StatusQuery,
    Subject,
    SubjectRequest,
    status_of,
)

# The form is documented; the check is require_id's (404, not FastAPI's 422).
SubjectIdPath = Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN})]

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.post(
    "/subjects",
    response_model=Subject,
    summary="The pseudonymous subject id of a person (created on first ask)",
)
async def subject(body: SubjectRequest, service: PersonServiceDep) -> Subject:
    return Subject(subject_id=await service.subject_id(body.id_number, body.name))


@router.get(
    "/subjects/{subject_id}/status",
    response_model=Status,
    summary="Live status of a subject (the verifier's cache miss)",
    description="404 `not_found` for a subject id that is unknown or not of the system's form.",
)
async def subject_status(subject_id: SubjectIdPath, service: PersonServiceDep) -> Status:
    return status_of(await service.by_subject(require_id(subject_id)))


@router.post(
    "/statuses",
    response_model=StatusList,
    summary="Live statuses of many subjects at once (a verifier warming up)",
    description="The statuses of the subjects that exist; 422 `invalid_id` for an id that is "
    "not of the system's form.",
)
async def statuses(body: StatusQuery, service: PersonServiceDep) -> StatusList:
    return StatusList(items=[status_of(p) for p in await service.by_subjects(body.subject_ids)])
