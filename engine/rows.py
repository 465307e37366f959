"""The instance and task rows as the write path reads and writes them.

Every action reads the rows it needs as plain dataclasses with named fields (SQLAlchemy
Core, no ORM objects: a completion is the busiest write) and writes the instance row
through one helper, :func:`write_instance`, which guards it with its version column:
two people acting on the same case at once cannot both win. The loser's write changes
nothing and raises :class:`CaseChanged`; the caller rolls back and runs the action again
(:func:`retrying`), and the second run reports what happened ("already completed by …").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Update, bindparam, func, insert, null, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from . import audit
from .db import HumanTask, Process, ProcessDefinition, ProcessInstance
from .errors import Conflict, NotFound
from .sql import expire, run
from .vocabulary import TaskStatus

T = TypeVar("T")
MAX_ATTEMPTS = 5

_instances = ProcessInstance.__table__
_tasks = HumanTask.__table__


class CaseChanged(Conflict):
    """Another transaction changed the case after this one read it: roll back and run the action again."""

    def __init__(self) -> None:
        super().__init__("The case changed while you were working on it; please try again.")


@dataclass(slots=True)
class InstanceRow:
    """The columns of a case's row that actions read and write (the serialized state apart)."""

    id: int
    definition_id: int
    process_key: str
    title: str
    status: str
    started_by_id: int
    version_id: int
    data: dict[str, Any]
    ended_at: datetime | None
    next_timer_at: datetime | None


_INSTANCE_COLUMNS = tuple(_instances.c[f.name] for f in fields(InstanceRow))


@dataclass(slots=True)
class TaskRow:
    """A task row with its case and what acting on it needs: the definition's digest, the process's
    separated tasks and, when read for a completion, the case's serialized state."""

    id: int
    name: str
    element_id: str
    spiff_task_id: str
    status: str
    assignee_id: int | None
    candidate_roles: list[str]
    completed_by_id: int | None
    completed_at: datetime | None
    instance: InstanceRow
    sha256: str
    separated_tasks: list[str]
    #: pairs of the process's tasks that must be done by different people
    separated_pairs: list[list[str]]
    state: str | None = None


_TASK_COLUMNS = (_tasks.c.id, _tasks.c.name, _tasks.c.element_id, _tasks.c.spiff_task_id, _tasks.c.status,
                 _tasks.c.assignee_id, _tasks.c.candidate_roles, _tasks.c.completed_by_id, _tasks.c.completed_at)


def _task_read(state: Any) -> Any:
    return (
        select(*(c.label(f"task_{c.name}") for c in _TASK_COLUMNS), *_INSTANCE_COLUMNS,
               ProcessDefinition.sha256, Process.separated_tasks, Process.separated_pairs, state.label("state"))
        .join(_instances, _instances.c.id == _tasks.c.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == _instances.c.definition_id)
        .join(Process, Process.key == _instances.c.process_key)
        .where(_tasks.c.id == bindparam("task_id"))
    )


#: a completion runs the workflow and needs its state; the other actions do not read it (it may be tens of KB).
#: Those lock the case's row as they read (PostgreSQL; SQLite locks the whole database when it writes): every
#: write path takes the case's row before its task rows, so a claim and a completion never deadlock.
_TASK_READ = {True: _task_read(_instances.c.state),
              False: _task_read(null()).with_for_update(of=_instances)}
_INSTANCE_READ = select(*_INSTANCE_COLUMNS).where(_instances.c.id == bindparam("instance_id"))
_INSTANCE_READ_WITH_STATE = select(*_INSTANCE_COLUMNS, _instances.c.state).where(
    _instances.c.id == bindparam("instance_id"))


def _instance_from(mapping: Any) -> InstanceRow:
    values = {f.name: mapping[f.name] for f in fields(InstanceRow)}
    values["data"] = dict(values["data"] or {})
    return InstanceRow(**values)


def read_task(session: Session, task_id: int, *, with_state: bool = False) -> TaskRow:
    """The task, its case and its process, in one query.

    :raises NotFound: no such task
    """
    row = run(session, _TASK_READ[with_state], {"task_id": task_id}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"There is no task {task_id}.")
    task = {c.name: row[f"task_{c.name}"] for c in _TASK_COLUMNS}
    task["candidate_roles"] = list(task["candidate_roles"] or [])
    return TaskRow(**task, instance=_instance_from(row), sha256=row["sha256"],
                   separated_tasks=list(row["separated_tasks"] or []),
                   separated_pairs=list(row["separated_pairs"] or []), state=row["state"])


def read_instance(session: Session, instance_id: int) -> InstanceRow:
    """:raises NotFound: no such case"""
    row = run(session, _INSTANCE_READ, {"instance_id": instance_id}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"There is no case {instance_id}.")
    return _instance_from(row)


def read_instance_state(session: Session, instance_id: int) -> tuple[InstanceRow, str]:
    """The case's row and its serialized workflow state (for actions that run the workflow)."""
    row = run(session, _INSTANCE_READ_WITH_STATE, {"instance_id": instance_id}).mappings().one_or_none()
    if row is None:
        raise NotFound(f"There is no case {instance_id}.")
    return _instance_from(row), row["state"]


@cache
def _write_statement(columns: frozenset[str]) -> Update:
    """``UPDATE process_instances SET version_id = :new_version, <columns> WHERE id = … AND version_id = …
    RETURNING audit_seq, audit_hash``: the head of the case's audit chain, as it stands under the lock the
    write takes (the commit seals the transaction's events onto it without reading it again)."""
    values = {name: bindparam(f"new_{name}", type_=_instances.c[name].type) for name in columns}
    return (update(_instances)
            .where(_instances.c.id == bindparam("instance_id"), _instances.c.version_id == bindparam("read_version"))
            .values(version_id=bindparam("new_version"), **values)
            .returning(_instances.c.audit_seq, _instances.c.audit_hash))


def write_instance(session: Session, row: InstanceRow, **values: Any) -> None:
    """Write ``values`` (columns of ``process_instances``) if nobody changed the case since ``row`` was read.

    ``row`` takes the new values and version; an ORM copy in the session is read again when next used.

    :raises CaseChanged: the case was changed by another transaction; nothing was written
    """
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(instance_id=row.id, read_version=row.version_id, new_version=row.version_id + 1)
    head = run(session, _write_statement(frozenset(values)), params).one_or_none()
    if head is None:
        raise CaseChanged
    audit.locked_head(session, row.id, head.audit_seq, head.audit_hash)
    row.version_id += 1
    for name, value in values.items():
        if name in InstanceRow.__slots__:
            setattr(row, name, value)
    expire(session, ProcessInstance, row.id)


_INSERT_INSTANCE = insert(_instances).returning(_instances.c.id)


def insert_instance(session: Session, row: InstanceRow, *, state: str, started_at: datetime,
                    business_key: str | None) -> int:
    """Insert a new case (its first state included: one INSERT); ``row.id`` is set."""
    values = {f.name: getattr(row, f.name) for f in fields(InstanceRow) if f.name != "id"}
    row.id = run(session, _INSERT_INSTANCE, {**values, "state": state, "started_at": started_at,
                                              "business_key": business_key, "audit_seq": 0}).scalar_one()
    return row.id


# --- task rows ----------------------------------------------------------------------------

_CLOSE_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"), _tasks.c.status == TaskStatus.OPEN)
    .values(status=TaskStatus.COMPLETED, completed_by_id=bindparam("actor_id"), completed_at=bindparam("now"),
            submitted=bindparam("values", type_=_tasks.c.submitted.type),
            assignee_id=func.coalesce(_tasks.c.assignee_id, bindparam("actor_id")),
            claimed_at=func.coalesce(_tasks.c.claimed_at, bindparam("now")))
)
_ASSIGN_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"), _tasks.c.status == TaskStatus.OPEN,
           _tasks.c.assignee_id.is_not_distinct_from(bindparam("holder_id")))
    .values(assignee_id=bindparam("assignee_id"), claimed_at=bindparam("claimed_at"))
)


def close_task(session: Session, task: TaskRow, actor_id: int, now: datetime, values: dict[str, Any]) -> bool:
    """Mark an open task completed by ``actor_id`` with the submitted ``values``; False if it was not open."""
    closed = run(session, _CLOSE_TASK, {"task_id": task.id, "actor_id": actor_id, "now": now, "values": values})
    expire(session, HumanTask, task.id)
    return bool(closed.rowcount)


def assign_task(session: Session, task: TaskRow, assignee_id: int | None, claimed_at: datetime | None) -> bool:
    """Give an open task to ``assignee_id`` (None: back to its roles) if it is still held as ``task`` says."""
    changed = run(session, _ASSIGN_TASK, {"task_id": task.id, "holder_id": task.assignee_id,
                                          "assignee_id": assignee_id, "claimed_at": claimed_at})
    if not changed.rowcount:
        return False
    task.assignee_id = assignee_id
    expire(session, HumanTask, task.id)
    return True


# --- retrying an action -------------------------------------------------------------------

_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, getattr(sqlite3, "SQLITE_BUSY_SNAPSHOT", 517)}


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back, run it again
_RETRY_SQLSTATES = {"40P01", "40001"}


def is_busy(exc: OperationalError) -> bool:
    """SQLite's "database is locked" (this transaction read a snapshot another writer has since
    replaced), or PostgreSQL's word that the transaction lost to another one and may simply run again."""
    return (getattr(exc.orig, "sqlite_errorcode", None) in _BUSY
            or getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES)


def retrying(session: Session, action: Callable[[], T], attempts: int = MAX_ATTEMPTS) -> T:
    """Run ``action`` (one engine operation on ``session``); when the case changed under it, roll the
    session back and run it again. This is the caller's unit of work: engine functions never roll back.

    :raises Conflict: still changing after ``attempts`` tries
    """
    for _attempt in range(attempts):
        try:
            return action()
        except CaseChanged:
            session.rollback()
        except OperationalError as exc:
            if not is_busy(exc):
                raise
            session.rollback()
    raise Conflict("The case is busy; please try again.")
