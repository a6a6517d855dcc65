"""Access records (出入记录): consumed from the verifier's stream, listed, exported, purged."""
