"""Schema revisions, oldest first (alembic loads them by path)."""
