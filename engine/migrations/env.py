"""Alembic environment: runs against the connection deptflow hands over, or the configured URL.

On SQLite, batch migrations copy a table, drop the old one and rename the copy. With foreign keys
on, SQLite's DROP TABLE first deletes every row, and ``ON DELETE CASCADE`` then empties the tables
that refer to it (0002 emptied ``user_roles`` and ``notifications`` that way). So migrations run
with foreign keys off, and ``PRAGMA foreign_key_check`` must find nothing before they are kept.
"""

from alembic import context

from engine.db import Base, make_engine
from engine.schema import include_object

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)  # the caller commits (see engine.schema.upgrade)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


def _run(connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: checked
        if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise RuntimeError("SQLite migrations need foreign keys off; start them outside a transaction")
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      include_object=include_object(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migrations left rows whose foreign keys refer to nothing: {broken[:5]}")


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
