"""Bring a database to the current schema with Alembic (``deptflow init``), and tell the other
commands whether a database is there and at the current schema before they use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``, in one transaction.

    On SQLite the migrations switch the connection's foreign keys off (see ``migrations/env.py``),
    which only works before its transaction begins; the connection is then discarded, so that the
    pool hands out only connections with foreign keys on.
    """
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if connection.dialect.name == "sqlite":
                connection.invalidate()


def include_object(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for a database of ``dialect``: the models' indexes made for another
    database only (:func:`engine.db.postgresql_only`) are not part of its schema."""

    def include(item: Any, _name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
        return not (kind == "index" and item.info.get("dialect", dialect) != dialect)

    return include


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def prepare_directory(url: str) -> None:
    """Create the directory of a SQLite file: only ``deptflow init`` does this."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def problem(url: str) -> str | None:
    """Why the commands that use a database cannot use the one at ``url``, in one line; ``None`` when
    it exists and is at the current schema. Creates nothing: a missing SQLite file is not opened
    (SQLite would create it), and a PostgreSQL database that does not exist is only connected to."""
    path = sqlite_path(url)
    shown = str(path) if path is not None else make_url(url).render_as_string(hide_password=True)
    if path is not None and not path.is_file():
        return f"no database at {path}; run `deptflow init` first"
    engine = create_engine(url)  # no pool options, no SQLite pragmas: this only reads
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except DBAPIError as exc:
        database = make_url(url).database
        if f'database "{database}" does not exist' in str(exc.orig):  # PostgreSQL, on connecting
            return f"no database {database} at {shown}; create it (createdb {database}), then run `deptflow init`"
        return f"cannot open the database at {shown}: {str(exc.orig).strip().splitlines()[0]}"
    finally:
        engine.dispose()
    heads = head_revisions()
    if not current:
        return f"the database at {shown} has no deptflow schema; run `deptflow init` first"
    if set(current) != set(heads):
        script = ScriptDirectory.from_config(alembic_config())
        unknown = [revision for revision in current if revision not in {r.revision for r in script.walk_revisions()}]
        if unknown:
            return (f"the database at {shown} has schema {', '.join(current)}, newer than this deptflow "
                    f"({', '.join(heads)}); upgrade deptflow")
        return (f"the database at {shown} has schema {', '.join(current)}, this deptflow needs {', '.join(heads)}; "
                f"run `deptflow init` to upgrade")
    return None
