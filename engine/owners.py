"""Who may change process diagrams and move cases between versions: process owners and administrators."""

from __future__ import annotations

from .db import User
from .errors import NotAllowed

OWNER_ROLES = frozenset({"process_owner", "admin"})


def check_owner(actor: User | None) -> None:
    """Refuse ``actor`` unless they hold a role of :data:`OWNER_ROLES`; ``None`` (the CLI, the system) may.

    :raises NotAllowed: the actor is neither a process owner nor an administrator
    """
    if actor is not None and not actor.role_keys & OWNER_ROLES:
        raise NotAllowed("Only process owners and administrators may change process diagrams.")
