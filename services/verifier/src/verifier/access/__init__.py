"""Access records: one per decision, on local disk before the answer, relayed to JetStream."""
