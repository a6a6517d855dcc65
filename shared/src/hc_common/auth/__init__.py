"""Signing keys, tokens and the key sets services publish and fetch."""
