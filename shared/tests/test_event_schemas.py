"""The one envelope writer and the typed payloads, as a consumer on the other side reads them."""

from datetime import UTC, date, datetime

import orjson
import pytest
from pydantic import ValidationError

from hc_common.events import envelope as subjects
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
