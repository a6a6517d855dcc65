"""The issuer: phone sign-in, family credentials and their cards, revocation, signing keys."""

from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[2]
