from fastapi import APIRouter

from hc_common.deps import ServiceKeyDep
from health_records.deps import PersonServiceDep
from health_records.person.schemas import (
    Status,
    StatusList,
    StatusQuery,
    Subject,
    SubjectRequest,
    status_of,
)

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
)
async def subject_status(subject_id: str, service: PersonServiceDep) -> Status:
    return status_of(await service.by_subject(subject_id))


@router.post(
    "/statuses",
    response_model=StatusList,
    summary="Live statuses of many subjects at once (a verifier warming up)",
)
async def statuses(body: StatusQuery, service: PersonServiceDep) -> StatusList:
    return StatusList(items=[status_of(p) for p in await service.by_subjects(body.subject_ids)])
