"""Endpoints for the other services (service key): credentials, revocations, users."""
