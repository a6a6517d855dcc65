"""Events between services: the envelope, the JetStream bus, the transactional outbox, consumers."""
