"""Process settings as data: who may start a process, its owner role, separation of duties, and the due
time and priority of user tasks whose diagram sets none. Edited on the process page by the process's
owner role or an administrator; every change audited.

Initial values come from the diagram when a process is first published (the start event's lane may start
it; no owner role, so administrators own it), or from the demo catalogue with ``deptflow init --demo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from . import definitions as defs
from .access import may_administer
from .clock import utcnow
from .db import Process, Role, User
from .errors import InvalidForm, NotAllowed, NotFound
from .permissions import can
from .vocabulary import EventKind, Permission

MAX_PRIORITY = 1000


@dataclass
class ProcessSettings:
    process: Process
    #: user task ids → names, of the latest published version
    tasks: dict[str, str]
    #: active roles, key → name
    roles: dict[str, str]
    may_edit: bool
    pairs: list[tuple[str, str]] = field(default_factory=list)


def may_see(session: Session, actor: User, process_key: str) -> bool:
    """Who may open the process page: holders of ``model``, administrators and the owner role."""
    return can(actor, Permission.MODEL) or may_administer(session, actor, process_key)


def settings_of(session: Session, actor: User, process_key: str) -> ProcessSettings | None:
    """The process's settings for its page (``None`` for a process that exists only as a draft)."""
    process = session.get(Process, process_key)
    if process is None:
        return None
    definition = defs.latest_definition(session, process_key, required=False)
    tasks = {}
    if definition is not None:
        tasks = {key: info.name for key, info in defs.parsed(session, definition).user_tasks.items()}
    roles = dict(session.execute(select(Role.key, Role.name).where(Role.active.is_(True)).order_by(Role.name)).all())
    pairs = [(a, b) for a, b in (process.separated_pairs or [])]
    return ProcessSettings(process, tasks, roles, may_administer(session, actor, process_key), pairs)


def _state(process: Process) -> dict:
    return {"starter_roles": sorted(process.starter_roles or []), "owner_role": process.owner_role,
            "separated_tasks": sorted(process.separated_tasks or []),
            "separated_pairs": [list(p) for p in process.separated_pairs or []],
            "default_due": process.default_due, "default_priority": process.default_priority}


def update_settings(session: Session, actor: User | None, process_key: str, *, starter_roles: list[str],
                    owner_role: str | None, separated_tasks: list[str], separated_pairs: list[tuple[str, str]],
                    default_due: str = "", default_priority: str | int | None = None) -> Process:
    """Save a process's settings; they apply to tasks created from now on.

    :param separated_pairs: (task id, task id) pairs that must be done by different people in one case
    :raises NotAllowed: ``actor`` neither holds the owner role nor administers
    :raises InvalidForm: per field: unknown roles or tasks, a pair of one task with itself, a due time that
        is not an ISO 8601 duration, a priority that is not a whole number from 0 to 1000
    """
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if actor is not None and not may_administer(session, actor, process_key):
        raise NotAllowed("Only the process's owner role or an administrator change its settings.")
    active = set(session.scalars(select(Role.key).where(Role.active.is_(True))))
    definition = defs.latest_definition(session, process_key, required=False)
    tasks = set(defs.parsed(session, definition).user_tasks) if definition is not None else set()
    default_due = (default_due or "").strip()
    priority_text = str(default_priority if default_priority is not None else "").strip()
    values = {"starter_roles": starter_roles, "owner_role": owner_role or "", "separated_tasks": separated_tasks,
              "separated_pairs": [list(p) for p in separated_pairs], "default_due": default_due,
              "default_priority": priority_text}
    errors: dict[str, str] = {}
    starters = sorted(set(starter_roles))
    if set(starters) - active:
        errors["starter_roles"] = f"Unknown or deactivated role: {', '.join(sorted(set(starters) - active))}."
    owner = (owner_role or "").strip() or None
    if owner is not None and owner not in active:
        errors["owner_role"] = f"Unknown or deactivated role: {owner}."
    separated = sorted(set(separated_tasks))
    if set(separated) - tasks:
        unknown = ", ".join(sorted(set(separated) - tasks))
        errors["separated_tasks"] = f"Not a user task of the latest version: {unknown}."
    pairs = []
    for a, b in separated_pairs:
        a, b = a.strip(), b.strip()
        if not a and not b:
            continue
        if a not in tasks or b not in tasks:
            errors["separated_pairs"] = "Choose two user tasks of the latest version for each pair."
        elif a == b:
            errors["separated_pairs"] = f"A pair needs two different tasks (“{a}” twice)."
        elif sorted((a, b)) not in pairs:
            pairs.append(sorted((a, b)))
    if default_due and ("${" in default_due or defs.due_at(default_due, utcnow()) is None):
        errors["default_due"] = "Use an ISO 8601 duration such as P3D (three days) or PT4H (four hours)."
    priority = None
    if priority_text:
        if not (priority_text.isascii() and priority_text.isdigit()) or int(priority_text) > MAX_PRIORITY:
            errors["default_priority"] = f"Use a whole number from 0 to {MAX_PRIORITY}."
        else:
            priority = int(priority_text)
    if errors:
        raise InvalidForm(errors, values)
    before = _state(process)
    process.starter_roles, process.owner_role, process.separated_tasks = starters, owner, separated
    process.separated_pairs = sorted(pairs)
    process.default_due, process.default_priority = default_due or None, priority
    after = _state(process)
    if before != after:
        audit.record(session, EventKind.PROCESS_SETTINGS_CHANGED, actor=actor, element_id=process_key,
                     process=process_key, before=before, after=after)
    session.flush()
    return process
