"""Migration scripts, one per schema change, date-prefixed. Alembic skips this file."""
