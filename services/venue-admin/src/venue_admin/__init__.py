"""venue-admin: venues, members and permissions, gate devices, venue rules, access records."""

from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[2]
