"""health-records: the pseudonymous subject id of a person."""

import httpx

from hc_common.errors import ServiceUnavailable, Unprocessable, register_messages

NAME_MISMATCH = "name_mismatch"
register_messages(
    {
        NAME_MISMATCH: (
            "姓名与身份证号码登记的姓名不一致",
            "The name differs from the one on file for this ID number",
        )
    }
)


class HealthRecordsClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def subject_for(self, id_number: str, name: str) -> str:
        """The subject id of this person (created on first ask). The ID number goes in the
        body, never in the URL. A name that is not the one health-records holds for the ID
        number is refused: 422 `name_mismatch`, passed on."""
        try:
            response = await self.client.post(
                "/internal/v1/subjects", json={"id_number": id_number, "name": name}
            )
            if response.status_code == 422 and _code(response) == NAME_MISMATCH:
                raise Unprocessable(
                    NAME_MISMATCH,
                    detail="姓名与该身份证号码登记的姓名不一致，请核对身份证号码和姓名",
                    detail_en="The name differs from the one on file for this ID number: "
                    "check the ID number and the name",
                )
            response.raise_for_status()
            return str(response.json()["subject_id"])
        except (httpx.HTTPError, KeyError, ValueError):
            raise ServiceUnavailable(
                detail="健康档案服务暂不可用，请稍后再试",
                detail_en="Health records are unreachable; try again later",
            ) from None


def _code(response: httpx.Response) -> object:
    """The problem's `code`, None when the body is not a problem."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None
