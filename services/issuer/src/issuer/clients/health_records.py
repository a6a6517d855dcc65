"""health-records: the pseudonymous subject id of a person."""

import httpx

from hc_common.errors import ServiceUnavailable


class HealthRecordsClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def subject_for(self, id_number: str, name: str) -> str:
        """The subject id of this person (created on first ask). The ID number goes in the
        body, never in the URL."""
        try:
            response = await self.client.post(
                "/internal/v1/subjects", json={"id_number": id_number, "name": name}
            )
            response.raise_for_status()
            return str(response.json()["subject_id"])
        except (httpx.HTTPError, KeyError, ValueError):
            raise ServiceUnavailable(
                detail="健康档案服务暂不可用，请稍后再试",
                detail_en="Health records are unreachable; try again later",
            ) from None
