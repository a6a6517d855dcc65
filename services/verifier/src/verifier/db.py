"""The verifier's own database. It holds no tables today: access records wait in the local
journal (access/spool.py), and the view lives in memory. Kept so that every service has the
same operational shape (migrations, `/readyz` database check) for what comes next."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
