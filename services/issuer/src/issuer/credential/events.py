"""What the credential domain publishes: `issuer.credential.issued.v1` and `.revoked.v1`, with
what a verifier keeps of a credential, staged in the caller's transaction (outbox)."""

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events import envelope as subjects
from hc_common.events.outbox import add_event
from hc_common.events.schemas import CredentialChanged
from issuer.credential.models import Credential
from issuer.db import OutboxEvent


def credential_changed(credential: Credential) -> CredentialChanged:
    """Masked data only: never the ID number or the name in clear."""
    return CredentialChanged(
        credential_id=credential.id,
        subject_id=credential.subject_id,
        version=credential.version,
        status=credential.status,
        masked_name=credential.masked_name,
        masked_id_number=credential.masked_id_number,
        birth_date=credential.birth_date,
        expires_at=credential.expires_at,
        revoked_at=credential.revoked_at,
    )


def stage_issued(session: AsyncSession, credential: Credential) -> str:
    return add_event(
        session, OutboxEvent, subjects.CREDENTIAL_ISSUED, credential_changed(credential)
    )


def stage_revoked(session: AsyncSession, credential: Credential) -> str:
    return add_event(
        session, OutboxEvent, subjects.CREDENTIAL_REVOKED, credential_changed(credential)
    )
