"""Endpoints for the other services (service key): subjects and live status."""
