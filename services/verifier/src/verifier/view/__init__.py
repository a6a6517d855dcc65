"""The verifier's in-memory view of what a scan needs, kept current by events."""
