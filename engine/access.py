"""Who may see, claim, complete and administer tasks and cases: every access rule of the engine.

Candidate roles come from ``camunda:candidateGroups`` or the task's lane; an assignee
from ``camunda:assignee`` (a username, or ``${starter}`` for the person who started the
case). Beyond their tasks, people have what their roles' permissions grant
(:class:`~engine.vocabulary.Permission`): readers of every case act on nothing that is not
theirs. The engine names no company role; the catalogue gives roles their permissions.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Event, HumanTask, Process, ProcessInstance, Role, User
from .errors import NotAllowed
from .permissions import can
from .vocabulary import InstanceStatus, Permission, TaskStatus


class CaseRef(Protocol):
    """A case as the access rules read it: an ORM row (pages) or a :class:`~engine.rows.InstanceRow` (actions)."""

    @property
    def started_by_id(self) -> int: ...
    @property
    def process_key(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def status(self) -> str: ...


class TaskRef(Protocol):
    """A task as the access rules read it: an ORM row (pages) or a :class:`~engine.rows.TaskRow` (actions)."""

    @property
    def name(self) -> str: ...
    @property
    def element_id(self) -> str: ...
    @property
    def candidate_roles(self) -> list[Any]: ...
    @property
    def assignee_id(self) -> int | None: ...
    @property
    def completed_by_id(self) -> int | None: ...
    @property
    def instance(self) -> CaseRef: ...


_EXPRESSION = re.compile(r"^\$\{\s*(\w+)\s*\}$")


def resolve_assignee(session: Session, expression: str | None, instance: Any) -> int | None:
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
    return user_id_of(session, username)


def user_id_of(session: Session, username: str) -> int | None:
    """The id of the active user ``username``, if there is one."""
    return session.scalar(select(User.id).where(User.username == username, User.active.is_(True)))


def is_candidate(actor: User, task: TaskRef) -> bool:
    return bool(actor.role_keys.intersection(task.candidate_roles))


def may_view_task(actor: User, task: TaskRef) -> bool:
    """Who may open a task's page: those who may act on it, who acted on it, readers of everything, and
    the person who started the case (to follow their request; they see it read-only)."""
    return (
        task.assignee_id == actor.id
        or task.completed_by_id == actor.id
        or is_candidate(actor, task)
        or can(actor, Permission.READ_ALL_CASES)
        or task.instance.started_by_id == actor.id
    )


def may_view_case(actor: User, instance: ProcessInstance, tasks: list[HumanTask], events: list[Event]) -> bool:
    """Who may open a case and its history: its starter, readers of every case, whoever acted on it,
    and whoever may open one of its tasks. The case page, the history and the exports all ask this."""
    if instance.started_by_id == actor.id or can(actor, Permission.READ_ALL_CASES):
        return True
    if any(e.actor_id == actor.id for e in events):
        return True
    return any(may_view_task(actor, t) for t in tasks)


def may_administer(session: Session, actor: User, process_key: str) -> bool:
    """Administrators and the process's owner role may suspend, resume and cancel any of its cases."""
    if can(actor, Permission.ADMINISTER):
        return True
    owner = session.scalar(select(Process.owner_role).where(Process.key == process_key))
    return owner is not None and owner in actor.role_keys


def may_cancel(session: Session, actor: User, instance: CaseRef) -> bool:
    """Besides administrators and the owner role, the starter may withdraw their own request."""
    return instance.started_by_id == actor.id or may_administer(session, actor, instance.process_key)


def allowed_case_actions(session: Session, actor: User, instance: CaseRef) -> set[str]:
    """Which of cancel / suspend / resume / retry ``actor`` may do to ``instance`` now (for the case page)."""
    actions = set()
    if instance.status in InstanceStatus.open() and may_cancel(session, actor, instance):
        actions.add("cancel")
    if may_administer(session, actor, instance.process_key):
        actions.add({InstanceStatus.RUNNING: "suspend", InstanceStatus.SUSPENDED: "resume",
                     InstanceStatus.INCIDENT: "retry"}.get(instance.status, ""))
    return actions - {""}


def managed_roles(session: Session, actor: User) -> set[str]:
    """The active roles whose managing role ``actor`` holds (they reassign those roles' tasks)."""
    if not actor.role_keys:
        return set()
    return set(session.scalars(select(Role.key).where(Role.manager_role.in_(actor.role_keys),
                                                      Role.active.is_(True))))


def manages(session: Session, actor: User, task: TaskRef) -> bool:
    """Whether ``actor`` holds the managing role of one of the task's roles."""
    return bool(task.candidate_roles) and bool(managed_roles(session, actor).intersection(task.candidate_roles))


def may_delegate(session: Session, actor: User, task: TaskRef) -> bool:
    """The person holding a task hands it on; administrators may hand on anyone's, and the holders of a
    role's managing role any open task of that role."""
    return task.assignee_id == actor.id or can(actor, Permission.ADMINISTER) or manages(session, actor, task)


def check_may_work_on(session: Session, actor: User, task: TaskRef, separated_tasks: list[str] | None = None,
                      separated_pairs: list[list[str]] | None = None) -> None:
    """Raise :class:`NotAllowed` unless ``actor`` may claim or complete ``task``.

    ``separated_tasks``, ``separated_pairs``: the process's separation rules, when the caller read them already.
    """
    if is_separated(session, actor, task, separated_tasks):
        raise NotAllowed(f"You started “{task.instance.title}”, so “{task.name}” must be done by someone else "
                         "(separation of duties).")
    done = paired_task_done_by(session, actor, task, separated_pairs)
    if done is not None:
        raise NotAllowed(f"You did “{done}” in “{task.instance.title}”, so “{task.name}” must be done by someone "
                         "else (separation of duties).")
    if task.assignee_id == actor.id:
        return
    if task.assignee_id is not None:
        holder = session.scalar(select(User.full_name).where(User.id == task.assignee_id)) or "someone else"
        raise NotAllowed(f"“{task.name}” is assigned to {holder}.")
    if not is_candidate(actor, task):
        raise NotAllowed(f"“{task.name}” is for another role ({', '.join(task.candidate_roles) or 'nobody'}).")


def is_separated(session: Session, actor: User, task: TaskRef, separated_tasks: list[str] | None = None) -> bool:
    """Separation of duties: the starter of a case may not do the tasks the catalogue separates."""
    if task.instance.started_by_id != actor.id:
        return False
    if separated_tasks is None:
        process = session.get(Process, task.instance.process_key)
        separated_tasks = process.separated_tasks or [] if process else []
    return task.element_id in separated_tasks


def _partners(element_id: str, pairs: list[list[str]]) -> set[str]:
    return {b if a == element_id else a for a, b in (tuple(pair) for pair in pairs if len(pair) == 2)
            if element_id in (a, b)}


def paired_task_done_by(session: Session, actor: User, task: Any,
                        separated_pairs: list[list[str]] | None = None) -> str | None:
    """Separation of duties between two tasks: the name of a task of the same case that ``actor`` completed
    and that the process pairs with ``task`` (the two must be done by different people), else ``None``."""
    if separated_pairs is None:
        separated_pairs = session.scalar(select(Process.separated_pairs).where(
            Process.key == task.instance.process_key)) or []
    partners = _partners(task.element_id, separated_pairs)
    if not partners:
        return None
    return session.scalar(select(HumanTask.name).where(
        HumanTask.instance_id == task.instance.id, HumanTask.element_id.in_(partners),
        HumanTask.status == TaskStatus.COMPLETED, HumanTask.completed_by_id == actor.id).limit(1))
