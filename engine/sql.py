"""Prebuilt Core statements on the hot path.

A task completion issues about a dozen statements. Through ``Session.execute`` each one pays
for the ORM layer and for a fresh cache key; built once at import with bind parameters and
run on the session's own connection (same transaction), each costs a fraction of that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key


def run(session: Session, statement: Executable, params: Any = None) -> CursorResult[Any]:
    """Execute a prebuilt statement in ``session``'s transaction, bypassing the ORM."""
    return session.connection().execute(statement, params)


def expire(session: Session, cls: type, ident: int) -> None:
    """A row written with Core: an ORM copy the session holds is read again when next used."""
    cached = session.identity_map.get(identity_key(cls, ident))
    if cached is not None:
        session.expire(cached)


def written(session: Session, cls: type, ident: int, **values: Any) -> None:
    """Columns written with Core: an ORM copy the session holds gets the new values, as if loaded."""
    cached = session.identity_map.get(identity_key(cls, ident))
    if cached is not None:
        for name, value in values.items():
            set_committed_value(cached, name, value)
