"""health-records: persons, NAT results, vaccinations, code colours and live status."""

from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[2]
