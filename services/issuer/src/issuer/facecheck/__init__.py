"""Face checks: a provider's signed result that one application may spend."""
