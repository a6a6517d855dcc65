"""The scan: who scans, what the QR names, the holder's live status, the decision, the record.

Request faults (token, permission, venue) are errors; everything about the holder is a
decision. The verifier never answers `pass` on a status it does not have.

The upstream calls of one scan (key sets, venue-admin's scan context, the issuer's credential,
health-records' status) share one time budget (`ScanBudget`): an upstream that hangs costs a
scan at most what is left of it, is then `Unreachable`, and the scan is answered with what it
has under the rules for an unreachable owner."""

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from hc_common.auth.tokens import InvalidToken, RemoteKeySet
from hc_common.clock import age_on, cst_today, utcnow
from hc_common.errors import (
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)
from hc_common.events.envelope import encode_data
from hc_common.events.schemas import AccessRecordCreated
from hc_common.hygiene import is_id
from hc_common.ids import encode
from verifier.access.spool import AccessSpool
from verifier.clients import NotKnown, ScanBudget, Unreachable, get_json, internal_path
from verifier.config import Settings
from verifier.scan.decision import Decision, HealthStatus, Rule, decide, health_reasons
from verifier.view import handlers
from verifier.view.metrics import SCAN_LATENCY, STALE_ANSWERS, cache_counter, decision_counter
from verifier.view.state import LRU, CredentialInfo, ScanView
from verifier.view.sync import ViewSync

QR_PREFIX = "GXHC1:"
# What the scan hides for a credential that fails its check (holder, health).
_CREDENTIAL_FAILED = frozenset({"credential_revoked", "credential_expired"})


@dataclass(frozen=True, slots=True)
class Scanner:
    kind: Literal["user", "device"]
    id: str
    venue_id: str | None


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
        if self.credential is None:
            return None
        checked = self.checked_at
        today = cst_today(checked)
        return age_on(self.credential.birth_date, today)


@dataclass
class ScanState:
    """What the verifier keeps between scans: key sets, upstream clients and the view."""

    issuer_keys: RemoteKeySet
    device_keys: RemoteKeySet
    issuer: httpx.AsyncClient
    venue_admin: httpx.AsyncClient
    health_records: httpx.AsyncClient
    stale_after_seconds: int
    view: ScanView
    sync: ViewSync  # is health-records up and its stream followed (health_current, ...)
    # What all upstream calls of one scan may take together (Settings.scan_budget_seconds).
    scan_budget_seconds: float = Settings.model_fields["scan_budget_seconds"].default


DEFAULT_RULE = Rule()


class RecordIds:
    """New access-record ids: what `hc_common.ids.new_id` makes (a ULID's text: 48 bits of
    milliseconds, 80 random bits from `os.urandom`, strictly increasing within the process),
    without python-ulid's objects and with the random bytes read 1,000 ids at a time: 0.5 us
    an id instead of 2 (the event loop's thread only)."""

    __slots__ = ("_at", "_last", "_random")

    def __init__(self) -> None:
        self._last = 0
        self._random = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._random):
            self._random, at = os.urandom(10 * 1000), 0
        self._at = at + 10
        value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(self._random[at : at + 10])
        if value <= self._last:  # the same millisecond: one more than the last, as python-ulid
            value = self._last + 1
        self._last = value
        return encode(value)


class ScanService:
    def __init__(self, state: ScanState, spool: AccessSpool) -> None:
        self.state = state
        self.view = state.view
        self.spool = spool
        self.budget = ScanBudget(state.scan_budget_seconds)
        self.record_id = RecordIds()
        # Verified tokens by their exact text: a signature is checked once, not on every scan.
        self._tokens: LRU[str, tuple[Scanner, float]] = LRU(200_000)
        self._qrs: LRU[str, tuple[dict[str, Any], float]] = LRU(200_000)

    # --- who scans --------------------------------------------------------------------
    async def scanner(self, token: str) -> Scanner:
        """The user or device the bearer token names, or 401. The first step of a scan (the
        router asks it before `scan`): the scan's time budget starts afresh here."""
        ScanBudget.end()
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > time.time():
            scanner = cached[0]
        else:
            scanner = await self._decode_scanner(token)
        if scanner.kind == "device":
            await self._check_device(scanner)
        return scanner

    async def _decode_scanner(self, token: str) -> Scanner:
        issuer_keys, device_keys = self.state.issuer_keys, self.state.device_keys
        if not (issuer_keys.kid_known(token) or device_keys.kid_known(token)):
            due = [keys for keys in (issuer_keys, device_keys) if keys.fetch_due]
            if due:
                # Both publishers asked at once, each within what is left of the budget: a
                # hanging issuer does not cost a gate with venue-admin's new key its scan.
                timeout = self.budget.remaining()
                await asyncio.gather(*(keys.ensure_kid(token, timeout=timeout) for keys in due))
        try:
            if issuer_keys.kid_known(token):
                claims = issuer_keys.decode(token, "access")
                scanner = Scanner("user", str(claims["sub"]), None)
            elif device_keys.kid_known(token):
                claims = device_keys.decode(token, "device")
                scanner = Scanner("device", str(claims["sub"]), str(claims.get("venue_id")))
            else:
                raise Unauthorized(detail="令牌无效", detail_en="Unknown token")
        except InvalidToken:
            raise Unauthorized(
                detail="令牌无效或已过期", detail_en="Invalid or expired token"
            ) from None
        # Signed by our own services, yet what it names reaches their URLs: ids of ours only.
        if not is_id(scanner.id) or (scanner.kind == "device" and not is_id(str(scanner.venue_id))):
            raise Unauthorized(detail="令牌无效", detail_en="Invalid token")
        self._tokens.put(token, (scanner, float(claims["exp"])))
        return scanner

    async def _check_device(self, scanner: Scanner) -> None:
        device = self.view.devices.get(scanner.id)
        if device is None:
            cache_counter("device", "miss").inc()
            try:
                await self._ask_scan_context(str(scanner.venue_id), {"device_id": scanner.id})
            except (NotKnown, Unreachable):
                return  # the token is venue-admin's signature; a deletion arrives by event
            device = self.view.devices.get(scanner.id)
        else:
            cache_counter("device", "hit").inc()
        if device is None or not device.active or device.venue_id != scanner.venue_id:
            raise Unauthorized(detail="闸机已停用", detail_en="The device can no longer scan")

    # --- where ------------------------------------------------------------------------
    async def _ask_scan_context(self, venue_id: str, params: dict[str, str]) -> None:
        """venue-admin's scan context of one venue (its rule, and the member or device asked
        about, if it is one of the venue's), taken into the view; NotKnown, Unreachable."""
        context = await get_json(
            self.state.venue_admin,
            internal_path("/internal/v1/venues/{}/scan-context", venue_id),
            params,
            deadline=self.budget.deadline(),
        )
        try:
            if context["member"] is not None:
                handlers.apply_member(self.view, context["member"])
            if context["device"] is not None:
                handlers.apply_device(self.view, context["device"])
            handlers.apply_rule(self.view, context["rule"])
        except (KeyError, ValidationError) as exc:
            raise Unreachable(f"scan context of {venue_id}: {exc!r}") from None

    async def authorize(self, scanner: Scanner, venue_id: str | None) -> tuple[str, Rule]:
        """The venue the scan is at and its rule, or 403/404/422. A `venue_id` that is not of
        the system's id format is an unknown venue (404), and goes nowhere."""
        if venue_id and not is_id(venue_id):
            raise NotFound(detail="场所不存在", detail_en="No such venue")
        if scanner.kind == "device":
            if venue_id and venue_id != scanner.venue_id:
                raise Forbidden(
                    detail="闸机不属于该场所", detail_en="The device belongs to another venue"
                )
            venue_id = scanner.venue_id
        if not venue_id:
            raise Unprocessable(
                detail="缺少 venue_id",
                detail_en="venue_id is required",
                extra={
                    "errors": [
                        {"field": "venue_id", "code": "missing", "message": "Field required"}
                    ]
                },
            )
        view = self.view
        if venue_id in view.deleted_venues:
            raise NotFound(detail="场所不存在", detail_en="No such venue")
        member = view.members.get((venue_id, scanner.id)) if scanner.kind == "user" else None
        known = venue_id in view.venues
        needs_ask = not known or (
            scanner.kind == "user" and member is None and not view.venues_complete
        )
        cache_counter("venue", "miss" if needs_ask else "hit").inc()
        if needs_ask:
            params = (
                {"user_id": scanner.id} if scanner.kind == "user" else {"device_id": scanner.id}
            )
            try:
                await self._ask_scan_context(venue_id, params)
            except NotKnown:
                raise NotFound(detail="场所不存在", detail_en="No such venue") from None
            except Unreachable:
                # Only without venue-admin's snapshot (fallback mode) is a miss a question.
                if not view.venues_complete:
                    raise ServiceUnavailable(
                        detail="场所服务暂不可用", detail_en="venue-admin unreachable"
                    ) from None
                if not known:
                    raise NotFound(detail="场所不存在", detail_en="No such venue") from None
            else:
                view.venues.add(venue_id)
                member = (
                    view.members.get((venue_id, scanner.id)) if scanner.kind == "user" else None
                )
        if scanner.kind == "user" and (
            member is None or member.removed or "reverse_scan" not in member.permissions
        ):
            raise Forbidden(
                detail="您没有该场所的反向扫码权限",
                detail_en="No reverse-scan permission at this venue",
            )
        return venue_id, view.rules.get(venue_id) or DEFAULT_RULE

    # --- what the QR names ------------------------------------------------------------
    async def _qr_claims(self, token: str) -> tuple[dict[str, Any] | None, bool]:
        """Verified claims of a credential token and whether it has expired; None if invalid."""
        cached = self._qrs.get(token)
        if cached is not None:
            return cached[0], time.time() >= cached[1]
        keys = self.state.issuer_keys
        if not keys.kid_known(token) and keys.fetch_due:
            await keys.ensure_kid(token, timeout=self.budget.remaining())
        try:
            claims = keys.decode(token, "credential", audience=None, leeway=0)
        except InvalidToken as exc:
            if not exc.expired or exc.claims is None:
                return None, False
            claims = exc.claims
        expires = float(claims.get("exp") or 0)
        self._qrs.put(token, (claims, expires))
        return claims, time.time() >= expires

    async def credential(
        self, qr: str, now: datetime | None = None
    ) -> tuple[CredentialInfo | None, list[str]]:
        """The credential the QR names and what is wrong with it (reasons), or None."""
        if not qr.startswith(QR_PREFIX):
            return None, ["credential_invalid"]
        claims, expired = await self._qr_claims(qr[len(QR_PREFIX) :])
        if claims is None:
            return None, ["credential_invalid"]
        credential_id = str(claims.get("jti"))
        info = self.view.credentials.get(credential_id)
        if info is None:
            cache_counter("credential", "miss").inc()
            try:
                data = await get_json(
                    self.state.issuer,
                    internal_path("/internal/v1/credentials/{}", credential_id),
                    deadline=self.budget.deadline(),
                )
                fetched = handlers.parse_credential(data)
            except NotKnown:
                return None, ["credential_invalid"]
            except (Unreachable, ValidationError):
                return None, ["status_unavailable"]
            self.view.apply_credential(fetched)
            info = self.view.credentials.get(credential_id) or fetched
        else:
            cache_counter("credential", "hit").inc()
        if info.subject_id != claims.get("sub") or info.version != claims.get("ver"):
            return None, ["credential_invalid"]
        reasons: list[str] = []
        if info.status == "revoked" or credential_id in self.view.revoked:
            reasons.append("credential_revoked")
        if expired or (now or utcnow()) > info.expires_at:
            reasons.append("credential_expired")
        return info, reasons

    # --- the live status ----------------------------------------------------------------
    async def status(self, subject_id: str) -> tuple[HealthStatus | None, bool]:
        """The live status (memory, else health-records), or the last known one up to
        `stale_after_seconds` old when health-records cannot be reached (stale)."""
        sync = self.state.sync
        cached = self.view.statuses.get(subject_id)
        if cached is not None and sync.health_current:
            cache_counter("status", "hit").inc()
            return cached.status, False
        cache_counter("status", "miss").inc()
        if cached is None or sync.health_records_up:
            try:
                data = await get_json(
                    self.state.health_records,
                    internal_path("/internal/v1/subjects/{}/status", subject_id),
                    deadline=self.budget.deadline(),
                )
                status = handlers.parse_status(data)
            except (Unreachable, NotKnown, ValidationError):
                pass
            else:
                self.view.apply_status(status)
                held = self.view.statuses.get(subject_id)
                return (held.status if held else status), False
        if cached is not None:
            known_at = max(cached.fetched_at, sync.health_confirmed_at)
            if time.monotonic() - known_at <= self.state.stale_after_seconds:
                return cached.status, True
        return None, False

    # --- the scan -----------------------------------------------------------------------
    async def scan(self, scanner: Scanner, qr: str, venue_id: str | None) -> ScanResult:
        started = time.perf_counter()
        try:
            venue_id, rule = await self.authorize(scanner, venue_id)
            now = utcnow()
            credential, reasons = await self.credential(qr, now)
            status, stale = None, False
            if credential is not None and not reasons:
                status, stale = await self.status(credential.subject_id)
                reasons = (
                    health_reasons(status, rule, now)
                    if status is not None
                    else ["status_unavailable"]
                )
        finally:
            ScanBudget.end()  # the upstream calls of this scan are over
        decision = decide(reasons)
        shown = (
            credential
            if credential is not None and _CREDENTIAL_FAILED.isdisjoint(reasons)
            else None
        )
        result = ScanResult(
            decision,
            shown,
            status if shown else None,
            stale and shown is not None,
            self.record_id(),
            now,
        )
        if result.stale:
            STALE_ANSWERS.inc()
        self.record(result, venue_id, scanner)
        for reason in decision.reasons or ("none",):
            decision_counter(decision.decision, reason).inc()
        SCAN_LATENCY.observe(time.perf_counter() - started)
        return result

    def record(self, result: ScanResult, venue_id: str, scanner: Scanner) -> None:
        """One access record per decision, in the local journal before the answer; the
        journal's shipper delivers it to JetStream in a batch event (access/spool.py)."""
        credential, status = result.credential, result.status
        record: AccessRecordCreated = {
            "record_id": result.record_id,
            "venue_id": venue_id,
            "checked_at": result.checked_at,
            "decision": result.decision.decision,
            "reasons": result.decision.reasons,
            "masked_name": credential.masked_name if credential else None,
            "color": status.color if status else None,
            "credential_id": credential.credential_id if credential else None,
            "subject_id": credential.subject_id if credential else None,
            "scanner": {"kind": scanner.kind, "id": scanner.id},
        }
        self.spool.append(result.record_id, encode_data(record))
