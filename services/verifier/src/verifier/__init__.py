"""The verifier: the scan. Credential check, permission check, live status, decision, record."""

from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[2]
