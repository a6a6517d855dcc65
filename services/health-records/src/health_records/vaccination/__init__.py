"""Vaccination doses pushed by vaccination sites in batches."""
