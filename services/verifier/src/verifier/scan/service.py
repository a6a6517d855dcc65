"""The scan: who scans, what the QR names, the holder's live status, the decision, the record.

Request faults (token, permission, venue) are errors; everything about the holder is a
decision. The verifier never answers `pass` on a status it does not have."""

import time
from dataclasses import dataclass, field
from datetime import date, datetime

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker

from hc_common.auth.tokens import InvalidToken, RemoteKeySet
from hc_common.clock import age_on, cst_today, to_utc, utcnow
from hc_common.errors import (
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from hc_common.events import envelope as subjects
from hc_common.events.outbox import add_event
from hc_common.ids import new_id
from verifier.clients import NotKnown, Unreachable, get_json
from verifier.db import OutboxEvent
from verifier.scan.decision import Decision, HealthStatus, Rule, decide, health_reasons

QR_PREFIX = "GXHC1:"


@dataclass(frozen=True, slots=True)
class Scanner:
    kind: str  # user | device
    id: str
    venue_id: str | None


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    credential_id: str
    subject_id: str
    version: int
    status: str
    masked_name: str
    masked_id_number: str
    birth_date: date
    expires_at: datetime

    @classmethod
    def from_event(cls, data: dict[str, object]) -> "CredentialInfo":
        return cls(
            credential_id=str(data["credential_id"]), subject_id=str(data["subject_id"]),
            version=int(data["version"]), status=str(data["status"]),  # type: ignore[call-overload]
            masked_name=str(data["masked_name"]), masked_id_number=str(data["masked_id_number"]),
            birth_date=date.fromisoformat(str(data["birth_date"])),
            expires_at=to_utc(datetime.fromisoformat(str(data["expires_at"]))),
        )


def status_from(data: dict[str, object]) -> HealthStatus:
    nat = data.get("nat") or {}
    vaccination = data.get("vaccination") or {}
    assert isinstance(nat, dict) and isinstance(vaccination, dict)
    return HealthStatus(
        subject_id=str(data["subject_id"]), color=str(data["color"]),
        nat_result=nat.get("result"),
        nat_sample_time=(to_utc(datetime.fromisoformat(nat["sample_time"].replace("Z", "+00:00")))
                         if nat.get("sample_time") else None),
        vaccine_doses=int(vaccination.get("doses") or 0),
        last_dose_at=(to_utc(datetime.fromisoformat(vaccination["last_dose_at"].replace("Z", "+00:00")))
                      if vaccination.get("last_dose_at") else None),
        version=int(data.get("version") or 0),  # type: ignore[call-overload]
    )


@dataclass
class ScanResult:
    decision: Decision
    credential: CredentialInfo | None
    status: HealthStatus | None
    stale: bool
    record_id: str
    checked_at: datetime

    @property
    def age(self) -> int | None:
        return age_on(self.credential.birth_date, cst_today(self.checked_at)) if self.credential else None


@dataclass
class ScanState:
    """What the verifier keeps between scans (grown into the in-memory view by events)."""

    issuer_keys: RemoteKeySet
    device_keys: RemoteKeySet
    issuer: httpx.AsyncClient
    venue_admin: httpx.AsyncClient
    health_records: httpx.AsyncClient
    stale_after_seconds: int
    statuses: dict[str, tuple[HealthStatus, float]] = field(default_factory=dict)


class ScanService:
    def __init__(self, state: ScanState, sessionmaker: async_sessionmaker) -> None:  # type: ignore[type-arg]
        self.state = state
        self.sessionmaker = sessionmaker

    async def scanner(self, token: str) -> Scanner:
        """The user or device the bearer token names, or 401."""
        issuer_keys, device_keys = self.state.issuer_keys, self.state.device_keys
        if not (issuer_keys.kid_known(token) or device_keys.kid_known(token)):
            await issuer_keys.ensure_kid(token)
            await device_keys.ensure_kid(token)
        try:
            if issuer_keys.kid_known(token):
                claims = issuer_keys.decode(token, "access")
                return Scanner("user", str(claims["sub"]), None)
            if device_keys.kid_known(token):
                claims = device_keys.decode(token, "device")
                return Scanner("device", str(claims["sub"]), str(claims.get("venue_id")))
        except InvalidToken:
            raise Unauthorized(detail="令牌无效或已过期",
                               detail_en="Invalid or expired token") from None
        raise Unauthorized(detail="令牌无效", detail_en="Unknown token")

    async def authorize(self, scanner: Scanner, venue_id: str | None) -> tuple[str, Rule]:
        """The venue the scan is at and its rule, or 401/403/404/422."""
        if scanner.kind == "device":
            if venue_id and venue_id != scanner.venue_id:
                raise Forbidden(detail="闸机不属于该场所", detail_en="The device belongs to another venue")
            venue_id = scanner.venue_id
        if not venue_id:
            raise Unprocessable(detail="缺少 venue_id", detail_en="venue_id is required",
                                extra={"errors": [{"field": "venue_id", "code": "missing",
                                                   "message": "Field required"}]})
        params = {"user_id": scanner.id} if scanner.kind == "user" else {"device_id": scanner.id}
        try:
            context = await get_json(self.state.venue_admin,
                                     f"/internal/v1/venues/{venue_id}/scan-context", params)
        except NotKnown:
            raise NotFound(detail="场所不存在", detail_en="No such venue") from None
        except Unreachable:
            raise ServiceUnavailable(detail="场所服务暂不可用", detail_en="venue-admin unreachable"
                                     ) from None
        if scanner.kind == "user":
            member = context.get("member")
            if not isinstance(member, dict) or "reverse_scan" not in member.get("permissions", []):
                raise Forbidden(detail="您没有该场所的反向扫码权限",
                                detail_en="No reverse-scan permission at this venue")
        rule = context.get("rule") or {}
        assert isinstance(rule, dict)
        return venue_id, Rule(frozenset(rule.get("allowed_colors", ["green"])),
                              rule.get("max_nat_age_hours"), int(rule.get("min_vaccine_doses", 0)),
                              int(rule.get("version", 0)))

    async def credential(self, qr: str) -> tuple[CredentialInfo | None, list[str]]:
        """The credential the QR names and what is wrong with it (reasons), or None."""
        if not qr.startswith(QR_PREFIX):
            return None, ["credential_invalid"]
        token = qr[len(QR_PREFIX):]
        keys = self.state.issuer_keys
        await keys.ensure_kid(token)
        expired = False
        try:
            claims = keys.decode(token, "credential", audience=None, leeway=0)
        except InvalidToken as exc:
            if not exc.expired or exc.claims is None:
                return None, ["credential_invalid"]
            claims, expired = exc.claims, True
        try:
            data = await get_json(self.state.issuer, f"/internal/v1/credentials/{claims['jti']}")
        except NotKnown:
            return None, ["credential_invalid"]
        except Unreachable:
            return None, ["status_unavailable"]
        info = CredentialInfo.from_event(data)
        if info.subject_id != claims.get("sub") or info.version != claims.get("ver"):
            return None, ["credential_invalid"]
        reasons = []
        if info.status == "revoked":
            reasons.append("credential_revoked")
        if expired or utcnow() > info.expires_at:
            reasons.append("credential_expired")
        return info, reasons

    async def status(self, subject_id: str) -> tuple[HealthStatus | None, bool]:
        """The live status, or the last known one up to `stale_after_seconds` old (stale)."""
        try:
            data = await get_json(self.state.health_records,
                                  f"/internal/v1/subjects/{subject_id}/status")
            status = status_from(data)
            self.state.statuses[subject_id] = (status, time.monotonic())
            return status, False
        except (Unreachable, NotKnown):
            cached = self.state.statuses.get(subject_id)
            if cached and time.monotonic() - cached[1] <= self.state.stale_after_seconds:
                return cached[0], True
            return None, False

    async def scan(self, scanner: Scanner, qr: str, venue_id: str | None) -> ScanResult:
        venue_id, rule = await self.authorize(scanner, venue_id)
        now = utcnow()
        credential, reasons = await self.credential(qr)
        status, stale = None, False
        if credential is not None and not reasons:
            status, stale = await self.status(credential.subject_id)
            reasons = (health_reasons(status, rule, now) if status is not None
                       else ["status_unavailable"])
        decision = decide(reasons)
        shown = credential if credential is not None and not {
            "credential_revoked", "credential_expired"} & set(reasons) else None
        result = ScanResult(decision, shown, status if shown else None, stale and shown is not None,
                            new_id(), now)
        await self.record(result, venue_id, scanner)
        return result

    async def record(self, result: ScanResult, venue_id: str, scanner: Scanner) -> None:
        """One access record per decision, kept on local disk until JetStream has it."""
        async with self.sessionmaker() as session:
            add_event(session, OutboxEvent, subjects.ACCESS_RECORD_CREATED, {
                "record_id": result.record_id, "venue_id": venue_id,
                "checked_at": result.checked_at.isoformat(),
                "decision": result.decision.decision, "reasons": result.decision.reasons,
                "masked_name": result.credential.masked_name if result.credential else None,
                "color": result.status.color if result.status else None,
                "credential_id": result.credential.credential_id if result.credential else None,
                "scanner": {"kind": scanner.kind, "id": scanner.id},
            }, event_id=result.record_id)
            await session.commit()
