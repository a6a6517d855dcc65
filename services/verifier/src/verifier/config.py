"""Verifier settings (`VERIFIER_` prefix, plus the unprefixed shared ones)."""

from pathlib import Path

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
