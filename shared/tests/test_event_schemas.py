"""The one envelope writer and the typed payloads, as a consumer on the other side reads them."""

from datetime import UTC, date, datetime

import orjson
import pytest
from pydantic import ValidationError

from hc_common.events import envelope as subjects
from hc_common.events.consumer import InvalidPayload, UndecodableEvent, decode_event
from hc_common.events.envelope import Envelope, encode_envelope
from hc_common.events.schemas import CredentialChanged, StatusChanged, parse_payload


def test_an_envelope_reads_back_with_contract_times() -> None:
    at = datetime(2026, 11, 28, 8, 0, 0, tzinfo=UTC)
    data: CredentialChanged = {
        "credential_id": "c1",
        "subject_id": "s1",
        "version": 2,
        "status": "revoked",
        "masked_name": "李*华",
        "masked_id_number": "4501**********0012",
        "birth_date": date(1950, 1, 2),
        "expires_at": at,
        "revoked_at": at,
    }
    event_id, occurred_at, raw = encode_envelope(subjects.CREDENTIAL_REVOKED, data)
    wire = orjson.loads(raw)
    assert wire["id"] == event_id and wire["type"] == subjects.CREDENTIAL_REVOKED
    assert wire["data"]["expires_at"] == "2026-11-28T08:00:00Z"
    assert wire["data"]["birth_date"] == "1950-01-02"
    envelope = Envelope.from_bytes(raw)
    assert envelope.occurred_at == occurred_at
    assert parse_payload(envelope.type, envelope.data) == data


def test_a_payload_that_does_not_fit_its_subject_is_refused() -> None:
    status: StatusChanged = {
        "subject_id": "s1",
        "masked_id_number": None,
        "color": "green",
        "color_reason": None,
        "nat": None,
        "vaccination": None,
        "version": 3,
        "updated_at": datetime(2026, 11, 28, tzinfo=UTC),
    }
    wire = orjson.loads(encode_envelope(subjects.STATUS_CHANGED, status)[2])["data"]
    assert parse_payload(subjects.STATUS_CHANGED, wire) == status
    with pytest.raises(ValidationError):
        parse_payload(subjects.STATUS_CHANGED, {**wire, "color": "purple"})
    with pytest.raises(ValidationError):
        parse_payload(subjects.STATUS_CHANGED, {k: v for k, v in wire.items() if k != "version"})


def _batch(records: list[dict[str, object]]) -> bytes:
    return encode_envelope(subjects.ACCESS_RECORD_BATCH, {"records": records}, event_id="p+2")[2]


def _record(decision: str = "pass") -> dict[str, object]:
    return {
        "record_id": "r1",
        "venue_id": "v1",
        "checked_at": datetime(2026, 11, 28, 8, 0, 0, 123456, tzinfo=UTC),
        "decision": decision,
        "reasons": [],
        "masked_name": "李*华",
        "color": "green",
        "credential_id": "c1",
        "subject_id": "s1",
        "scanner": {"kind": "device", "id": "g1"},
    }


def test_a_consumer_that_validates_decodes_envelope_and_payload_in_one_pass() -> None:
    raw = _batch([_record(), _record("deny")])
    decoded = decode_event(raw, subjects.ACCESS_RECORD_BATCH, validate=True)
    plain = Envelope.from_bytes(raw)
    assert decoded.payload_checked and not plain.payload_checked
    assert (decoded.id, decoded.type, decoded.occurred_at) == (
        plain.id,
        plain.type,
        plain.occurred_at,
    )
    # The payload as its schema reads it: what parse_payload makes of the plain envelope's.
    assert decoded.data == parse_payload(subjects.ACCESS_RECORD_BATCH, plain.data)
    assert decoded.data["records"][0]["checked_at"] == _record()["checked_at"]
    unchecked = decode_event(raw, subjects.ACCESS_RECORD_BATCH)
    assert not unchecked.payload_checked and unchecked.data == plain.data


def test_a_validating_consumer_tells_a_bad_payload_from_a_bad_envelope() -> None:
    with pytest.raises(InvalidPayload) as refused:
        decode_event(
            _batch([_record(), _record("waived")]), subjects.ACCESS_RECORD_BATCH, validate=True
        )
    assert refused.value.event_id == "p+2"
    with pytest.raises(UndecodableEvent):
        decode_event(b'{"type": 1}', subjects.ACCESS_RECORD_BATCH, validate=True)
    # An envelope without id or time is read as before (both made up), its payload checked.
    bare = orjson.dumps({"type": subjects.ACCESS_RECORD_BATCH, "data": {"records": []}})
    decoded = decode_event(bare, subjects.ACCESS_RECORD_BATCH, validate=True)
    assert decoded.payload_checked and decoded.id and decoded.data == {"records": []}
