"""Prebuilt Core statements on the hot path.

A task completion issues about a dozen statements. Through ``Session.execute`` each one pays
for the ORM layer and for a fresh cache key; built once at import with bind parameters and
run on the session's own connection (same transaction), each costs a fraction of that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.orm import Session


def run(session: Session, statement: Executable, params: Any = None) -> CursorResult[Any]:
    """Execute a prebuilt statement in ``session``'s transaction, bypassing the ORM."""
    return session.connection().execute(statement, params)
