"""The store: SQLite by default, PostgreSQL for replicas; one code path through SQLAlchemy Core."""
