"""The alembic environment, shipped inside the package as ``dk2020flow._migrations``."""
