"""The issuer: user accounts by phone number."""

import httpx

from hc_common.errors import ServiceUnavailable


class IssuerClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def resolve_user(self, phone: str) -> tuple[str, str]:
        """(user_id, masked_phone) of the number, the user created if it has none yet."""
        try:
            response = await self.client.post("/internal/v1/users/resolve", json={"phone": phone})
            response.raise_for_status()
            body = response.json()
            return str(body["user_id"]), str(body["masked_phone"])
        except (httpx.HTTPError, KeyError, ValueError):
            raise ServiceUnavailable(
                detail="账号服务暂不可用，请稍后再试",
                detail_en="The account service is unreachable",
            ) from None
