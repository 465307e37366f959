"""The Alembic migrations produce exactly the schema the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine import schema
from engine.db import Base, make_engine


def test_migrations_match_the_models(database_url):
    engine = make_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": schema.include_object(connection.dialect.name)})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []
