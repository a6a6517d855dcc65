from fastapi import APIRouter

from health_records.deps import AuthorityDep, PersonServiceDep
from health_records.person.schemas import CodeSet, Status, status_of

router = APIRouter(tags=["codes"])


@router.post(
    "/v1/codes",
    response_model=Status,
    dependencies=[AuthorityDep],
    summary="Set a person's code colour (authority)",
    description="Answers the person's status after the change. The code stays red "
    "while the person's latest NAT result is positive, whatever is set. "
    "A person nobody reported on has a green code. `reason` is free text (tab and line "
    "breaks allowed, no other control character: 422 `invalid_text`).",
)
async def set_code(body: CodeSet, service: PersonServiceDep) -> Status:
    person = await service.set_color(body.id_number, body.color.value, body.reason)
    return status_of(person, body.id_number)
