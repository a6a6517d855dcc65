"""Every table of the verifier, for `Base.metadata` (Alembic's target): none today."""

from verifier.db import Base

__all__ = ["Base"]
