"""Verifier settings (`VERIFIER_` prefix, plus the unprefixed shared ones)."""

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from hc_common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERIFIER_", extra="ignore")

    service_name: str = "verifier"
    # A status older than this is not used when health-records cannot be reached.
    stale_after_seconds: int = 600
    # Statuses kept in memory (LRU); about 1 KiB each, see docs/scaling.md.
    status_cache_size: int = 1_000_000
    # The local journal of access records not yet acked by JetStream (default:
    # DATA_DIR/access-spool). Give each replica its own persistent volume.
    spool_dir: Path | None = None
    # gc.freeze() once the view is loaded (shorter collection pauses; see main.py).
    gc_freeze: bool = True
    # Venues per page of venue-admin's scan snapshot read at start (every page is read).
    snapshot_page_size: int = Field(500, ge=1, le=5000)
    # On a graceful stop, how long the journal's shipper may take to ship what it holds
    # before the process exits (keep it inside the orchestrator's grace period).
    shutdown_ship_seconds: float = Field(8.0, ge=0)
    # Every upstream call made while answering one scan shares this budget: a scan is
    # answered within it plus the scan's own work, even when an upstream hangs (the
    # contract's 2 seconds). The clock starts at the scan's first upstream call (a scan
    # answered from memory never starts it); each call gets what is left, as a deadline
    # over the whole call (httpx's per-phase time-outs do not bound a frozen or trickling
    # server); a call it does not cover counts as unreachable (scan/service.py says what the
    # scan answers then). A key-set fetch the scan stops waiting for goes on, for the next
    # scans. Keep it under 2 s less the scan's own work.
    scan_budget_seconds: float = Field(1.5, gt=0, le=1.9)
    # The issuer's and venue-admin's addresses as the staff scanning page (`/scan/`) calls
    # them from a phone's browser: sign-in and the venue list. Default: ISSUER_URL and
    # VENUE_ADMIN_URL, which are right when the browser reaches the services as the verifier
    # does (the local run); behind a gateway or ingress give the public URLs.
    public_issuer_url: str = ""
    public_venue_admin_url: str = ""

    @model_validator(mode="after")
    def _public_urls_default_to_upstream(self) -> "Settings":
        self.public_issuer_url = self.public_issuer_url or self.issuer_url
        self.public_venue_admin_url = self.public_venue_admin_url or self.venue_admin_url
        return self
