"""Alembic migrations of the qa_system store (installed as the package ``qa_system._migrations``)."""
