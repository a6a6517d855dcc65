from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from hc_common.deps import ServiceKeyDep
from hc_common.errors import NotFound
from health_records.deps import PersonServiceDep
from health_records.person.schemas import Status, Subject, SubjectRequest
from health_records.person.service import status_of

router = APIRouter(prefix="/internal/v1", tags=["internal"], dependencies=[ServiceKeyDep])


@router.post(
    "/subjects",
    response_model=Subject,
    summary="The pseudonymous subject id of a person (created on first ask)",
)
async def subject(body: SubjectRequest, service: PersonServiceDep, request: Request) -> Subject:
    person = await service.get_or_create(body.id_number, body.name)
    await service.session.commit()
    return Subject(subject_id=person.subject_id)


@router.get(
    "/subjects/{subject_id}/status",
    response_model=Status,
    summary="Live status of a subject (the verifier's cache miss)",
)
async def subject_status(subject_id: str, service: PersonServiceDep) -> Status:
    person = await service.repo.by_subject(subject_id)
    if person is None:
        raise NotFound()
    return status_of(person)


class StatusQuery(BaseModel):
    subject_ids: list[str] = Field(max_length=10000)


class StatusList(BaseModel):
    items: list[Status]


@router.post(
    "/statuses",
    response_model=StatusList,
    summary="Live statuses of many subjects at once (a verifier warming up)",
)
async def statuses(body: StatusQuery, service: PersonServiceDep) -> StatusList:
    persons = await service.repo.by_subjects(body.subject_ids)
    return StatusList(items=[status_of(p) for p in persons])
