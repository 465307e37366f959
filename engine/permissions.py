"""Who may do what: one question, ``can(actor, permission)``, answered from the roles' data."""

from __future__ import annotations

from .db import User
from .errors import NotAllowed
from .vocabulary import Permission


def can(actor: User | None, permission: Permission | str) -> bool:
    """Whether one of ``actor``'s roles grants ``permission``."""
    return actor is not None and Permission(permission) in actor.permissions


def require(actor: User | None, permission: Permission | str, message: str) -> None:
    """Raise :class:`NotAllowed` with ``message`` unless ``actor`` has ``permission``."""
    if not can(actor, permission):
        raise NotAllowed(message)
