"""Nucleic-acid test (NAT) results pushed by laboratories in batches."""
