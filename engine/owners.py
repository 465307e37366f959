"""Who may change process diagrams and move cases between versions: holders of the ``model`` permission."""

from __future__ import annotations

from .db import User
from .permissions import require
from .vocabulary import Permission


def check_owner(actor: User | None) -> None:
    """Refuse ``actor`` unless their roles grant :attr:`Permission.MODEL`; ``None`` (the CLI, the system) may.

    :raises NotAllowed: the actor may not model processes
    """
    if actor is not None:
        require(actor, Permission.MODEL, "Only process owners and administrators may change process diagrams.")
