from pydantic import BaseModel, Field

from hc_common.hygiene import Text
from hc_common.phone import Phone


class OtpRequest(BaseModel):
    phone: Phone


class OtpSent(BaseModel):
    expires_in: int


class TokenRequest(BaseModel):
    phone: Phone
    code: Text = Field(min_length=1, max_length=12)


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    user_id: str
