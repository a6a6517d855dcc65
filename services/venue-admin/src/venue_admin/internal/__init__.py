"""Endpoints for the verifier (service key): scanners, rules, snapshots."""
