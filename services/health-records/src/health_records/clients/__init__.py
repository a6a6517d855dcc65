"""Typed wrappers of the other services' internal endpoints."""
