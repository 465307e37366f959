"""Who reads a process's statistics. The figures themselves are the dashboard's (:mod:`engine.dashboard`);
the clerk's former monthly page of engineering-drawing applications is its "applications per month" figure."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Process, User
from .errors import NotAllowed, NotFound
from .permissions import can
from .vocabulary import Permission


def may_read_statistics(session: Session, actor: User, process_key: str) -> bool:
    """The process's owner role and holders of :attr:`Permission.STATISTICS` read its statistics."""
    if can(actor, Permission.STATISTICS):
        return True
    owner = session.scalar(select(Process.owner_role).where(Process.key == process_key))
    return owner is not None and owner in actor.role_keys


def statistics_process(session: Session, actor: User, process_key: str) -> Process:
    """The process whose statistics ``actor`` asks for.

    :raises NotFound: no such process
    :raises NotAllowed: unless ``actor`` holds the process's owner role or may read all statistics
    """
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if not may_read_statistics(session, actor, process_key):
        raise NotAllowed(f"Statistics of “{process.title}” are for its owner and management.")
    return process
