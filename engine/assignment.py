"""Who may see, claim and complete a task.

Candidate roles come from ``camunda:candidateGroups`` or the task's lane; an assignee
from ``camunda:assignee`` (a username, or ``${starter}`` for the person who started the
case). Auditors and process owners read everything but act on nothing that is not theirs.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import HumanTask, Process, ProcessInstance, User
from .errors import NotAllowed

READ_ALL_ROLES = frozenset({"auditor", "admin", "process_owner"})
_EXPRESSION = re.compile(r"^\$\{\s*(\w+)\s*\}$")


def resolve_assignee(session: Session, expression: str | None, instance: ProcessInstance) -> int | None:
    """The user id named by ``camunda:assignee``, or ``None`` to leave the task to its roles."""
    if not expression:
        return None
    match = _EXPRESSION.match(expression.strip())
    if match:
        name = match.group(1)
        if name in ("starter", "initiator"):
            return instance.started_by_id
        value = (instance.data or {}).get(name)
        if not isinstance(value, str):
            return None
        username = value
    else:
        username = expression.strip()
    return session.scalar(select(User.id).where(User.username == username, User.active.is_(True)))


def is_candidate(actor: User, task: HumanTask) -> bool:
    return bool(actor.role_keys.intersection(task.candidate_roles))


def may_view_task(actor: User, task: HumanTask) -> bool:
    """Who may open a task's page: those who may act on it, who acted on it, readers of everything, and
    the person who started the case (to follow their request; they see it read-only)."""
    return (
        task.assignee_id == actor.id
        or task.completed_by_id == actor.id
        or is_candidate(actor, task)
        or bool(actor.role_keys & READ_ALL_ROLES)
        or task.instance.started_by_id == actor.id
    )


def check_may_work_on(session: Session, actor: User, task: Any, separated_tasks: list[str] | None = None) -> None:
    """Raise :class:`NotAllowed` unless ``actor`` may claim or complete ``task``.

    ``separated_tasks``: the process's separated elements, when the caller read them already.
    """
    if is_separated(session, actor, task, separated_tasks):
        raise NotAllowed(f"You started “{task.instance.title}”, so “{task.name}” must be done by someone else "
                         "(separation of duties).")
    if task.assignee_id == actor.id:
        return
    if task.assignee_id is not None:
        holder = session.scalar(select(User.full_name).where(User.id == task.assignee_id)) or "someone else"
        raise NotAllowed(f"“{task.name}” is assigned to {holder}.")
    if not is_candidate(actor, task):
        raise NotAllowed(f"“{task.name}” is for another role ({', '.join(task.candidate_roles) or 'nobody'}).")


def is_separated(session: Session, actor: User, task: Any, separated_tasks: list[str] | None = None) -> bool:
    """Separation of duties: the starter of a case may not do the tasks the catalogue separates."""
    if task.instance.started_by_id != actor.id:
        return False
    if separated_tasks is None:
        process = session.get(Process, task.instance.process_key)
        separated_tasks = process.separated_tasks or [] if process else []
    return task.element_id in separated_tasks
