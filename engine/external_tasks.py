"""What external task workers do (as Camunda 7's external tasks): fetch and lock, complete, fail, extend a lock.

A worker is a program that authenticates as a user whose roles grant ``external_worker``; it names
itself with a ``worker_id`` of its own choosing, and a lock belongs to that id. Each function is one
unit of work on the caller's session, the shape of :mod:`engine.actions`: it never commits, and a
concurrent change of the case raises :class:`~engine.rows.CaseChanged` for
:func:`engine.rows.retrying`.

Like Camunda, a completion or failure needs the worker that holds the task (the last to lock it);
once its lock expired another worker may fetch the task, and from then on the first one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from . import audit
from .actions import record_step
from .clock import utcnow
from .db import ExternalTask, ProcessInstance, User
from .errors import Conflict, InvalidForm, NotFound, TaskNoLongerOpen
from .permissions import require
from .rows import CaseChanged, read_instance
from .running import Incident, RunningInstance
from .sql import run
from .vocabulary import EventKind, InstanceStatus, Permission, TaskStatus

_rows = ExternalTask.__table__
_instances = ProcessInstance.__table__

#: the most tasks one fetch locks, and the longest lock (a worker that needs longer extends it)
MAX_TASKS = 100
MAX_LOCK = timedelta(days=1)
MAX_WORKER_ID = 200


@dataclass(frozen=True, slots=True)
class LockedTask:
    """A task a fetch locked for the worker, with what it needs to do the work."""

    id: int
    instance_id: int
    topic: str
    element_id: str
    name: str
    business_key: str | None
    #: the case's variables when it was fetched
    variables: dict[str, Any]
    lock_expires_at: datetime
    #: what the last failure left (None: never failed)
    retries: int | None


@dataclass(frozen=True, slots=True)
class ExternalTaskState:
    """An external task after a completion, failure or lock extension."""

    id: int
    instance_id: int
    name: str
    status: str
    worker_id: str | None
    lock_expires_at: datetime | None
    retries: int | None
    #: the case is an incident now (the worker gave up)
    incident: bool = False


def _check_worker(actor: User) -> None:
    require(actor, Permission.EXTERNAL_WORKER, "Only a user whose roles grant external_worker may work on "
                                               "external tasks.")


def _worker(worker_id: str) -> str:
    text = (worker_id or "").strip()
    if not text or len(text) > MAX_WORKER_ID:
        raise InvalidForm({"worker_id": f"Name the worker (1 to {MAX_WORKER_ID} characters)."},
                          {"worker": worker_id})
    return text


def _duration(name: str, value: timedelta, longest: timedelta) -> timedelta:
    if not timedelta(0) < value <= longest:
        raise InvalidForm({name: f"Between 1 millisecond and {longest.total_seconds():.0f} seconds."},
                          {name: value.total_seconds()})
    return value


# --- fetch and lock --------------------------------------------------------------------------


def _free(now: Any) -> Any:
    """Open, not locked (or the lock expired), retries left, not waiting out a failure."""
    return (
        (_rows.c.status == TaskStatus.OPEN)
        & or_(_rows.c.lock_expires_at.is_(None), _rows.c.lock_expires_at <= now)
        & or_(_rows.c.retries_left.is_(None), _rows.c.retries_left > 0)
        & or_(_rows.c.retry_at.is_(None), _rows.c.retry_at <= now)
    )


_LOCK = (update(_rows)
         .where(_rows.c.id == bindparam("task_id"), _free(bindparam("now")))
         .values(worker_id=bindparam("worker"), lock_expires_at=bindparam("until")))
_LOCKED = (select(_rows.c.id, _rows.c.instance_id, _rows.c.topic, _rows.c.element_id, _rows.c.name,
                  _instances.c.business_key, _instances.c.data, _rows.c.lock_expires_at, _rows.c.retries_left)
           .join(_instances, _instances.c.id == _rows.c.instance_id)
           .where(_rows.c.id.in_(bindparam("ids", expanding=True))).order_by(_rows.c.created_at, _rows.c.id))


def fetch_and_lock(session: Session, actor: User, worker_id: str, topics: list[str], max_tasks: int,
                   lock_duration: timedelta) -> list[LockedTask]:
    """Lock up to ``max_tasks`` free tasks of ``topics`` (oldest first) for ``worker_id``.

    Free: open, of a running case, not locked or its lock expired, not out of retries, past the wait
    its last failure asked for. On PostgreSQL rows other workers are locking are skipped
    (``FOR UPDATE SKIP LOCKED``); on both databases the lock itself is a guarded UPDATE, so two
    workers never lock the same task.

    :param lock_duration: how long the task stays the worker's (at most :data:`MAX_LOCK`)
    :raises NotAllowed: ``actor``'s roles do not grant ``external_worker``
    :raises InvalidForm: no topic, no worker id, a count or duration out of range
    """
    _check_worker(actor)
    worker = _worker(worker_id)
    wanted = sorted({t.strip() for t in topics if t and t.strip()})
    if not wanted:
        raise InvalidForm({"topics": "Name at least one topic."}, {"topics": topics})
    if not 1 <= max_tasks <= MAX_TASKS:
        raise InvalidForm({"max_tasks": f"From 1 to {MAX_TASKS}."}, {"max_tasks": max_tasks})
    now = utcnow()
    until = now + _duration("lock_duration", lock_duration, MAX_LOCK)
    query = (select(_rows.c.id)
             .join(_instances, _instances.c.id == _rows.c.instance_id)
             .where(_rows.c.topic.in_(wanted), _free(now), _instances.c.status == InstanceStatus.RUNNING)
             .order_by(_rows.c.created_at, _rows.c.id).limit(max_tasks))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_rows)
    locked = [task_id for task_id in session.scalars(query)
              if run(session, _LOCK, {"task_id": task_id, "now": now, "worker": worker, "until": until}).rowcount]
    if not locked:
        return []
    return [LockedTask(row.id, row.instance_id, row.topic, row.element_id, row.name, row.business_key,
                       dict(row.data or {}), row.lock_expires_at, row.retries_left)
            for row in run(session, _LOCKED, {"ids": locked})]


# --- acting on one locked task ---------------------------------------------------------------


def _read(session: Session, task_id: int) -> ExternalTask:
    row = session.get(ExternalTask, task_id, populate_existing=True)
    if row is None:
        raise NotFound(f"There is no external task {task_id}.")
    return row


def _check_holder(row: ExternalTask, worker: str, instance_status: str) -> None:
    """The task is open, its case running, and ``worker`` holds it; else say who does."""
    if row.status == TaskStatus.COMPLETED:
        raise Conflict(f"“{row.name}” was already completed by worker “{row.worker_id}” at "
                       f"{row.completed_at:%Y-%m-%d %H:%M:%S} UTC.")
    if row.status != TaskStatus.OPEN:
        raise TaskNoLongerOpen(f"“{row.name}” is no longer open (it was {row.status}).")
    if instance_status != InstanceStatus.RUNNING:
        raise TaskNoLongerOpen(f"The case of “{row.name}” is {instance_status}; its tasks wait.")
    if row.worker_id is None:
        raise Conflict(f"“{row.name}” is not locked by worker “{worker}”: fetch and lock it first.")
    if row.worker_id != worker:
        until = f" until {row.lock_expires_at:%Y-%m-%d %H:%M:%S} UTC" if row.lock_expires_at else ""
        raise Conflict(f"“{row.name}” is locked by worker “{row.worker_id}”{until}, not by “{worker}”.")


def _variables(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables a worker sends become process data: names scripts and conditions can use."""
    errors = {str(name): "A variable name is letters, digits and _, not starting with a digit or _."
              for name in variables if not (isinstance(name, str) and name.isidentifier() and not name.startswith("_"))}
    if errors:
        raise InvalidForm(errors, variables)
    return dict(variables)


_CLOSE = (update(_rows)
          .where(_rows.c.id == bindparam("task_id"), _rows.c.status == TaskStatus.OPEN,
                 _rows.c.worker_id == bindparam("worker"))
          .values(status=TaskStatus.COMPLETED, completed_at=bindparam("now"), lock_expires_at=None))


def complete(session: Session, actor: User, worker_id: str, task_id: int,
             variables: dict[str, Any]) -> ExternalTaskState:
    """Complete the task the worker holds with ``variables`` merged into its data; the case runs on.

    Audited as ``external_task_completed`` with the variables and what they changed, the case's next
    steps as any completion's are; the case is written through the guarded instance write.

    :raises Conflict: another worker holds the task (named), or it was completed already
    :raises TaskNoLongerOpen: the task was cancelled, or its case is not running
    :raises InvalidForm: a variable name that process data cannot hold
    :raises CaseChanged: the case changed since it was read (run again through :func:`engine.rows.retrying`)
    """
    _check_worker(actor)
    worker = _worker(worker_id)
    row = _read(session, task_id)
    running = RunningInstance.open(session, row.instance_id)
    instance = running.row
    _check_holder(row, worker, instance.status)
    values = _variables(variables)
    spiff_task = running.workflow.get_task_from_id(UUID(row.spiff_task_id))
    if spiff_task.state != TaskState.STARTED:
        raise CaseChanged  # the case moved on after the row was read
    now = utcnow()
    if not run(session, _CLOSE, {"task_id": row.id, "worker": worker, "now": now}).rowcount:
        raise CaseChanged
    result, changes = running.complete(session, spiff_task, values)
    audit.record(session, EventKind.EXTERNAL_TASK_COMPLETED, instance=instance, actor=actor,
                 element_id=row.element_id, name=row.name, topic=row.topic, worker_id=worker,
                 external_task_id=row.id, values=values, changes=changes)
    record_step(session, running, result)
    return ExternalTaskState(row.id, row.instance_id, row.name, TaskStatus.COMPLETED, worker, None, row.retries_left)


_FAIL = (update(_rows)
         .where(_rows.c.id == bindparam("task_id"), _rows.c.status == TaskStatus.OPEN,
                _rows.c.worker_id == bindparam("worker"))
         .values(retries_left=bindparam("left"), retry_at=bindparam("not_before"), last_error=bindparam("error"),
                 worker_id=None, lock_expires_at=None))


def fail(session: Session, actor: User, worker_id: str, task_id: int, message: str, retries: int,
         retry_after: timedelta) -> ExternalTaskState:
    """The worker could not do the task: it says why and how many retries are left (it counts them down,
    as Camunda's workers do, from the ``retries`` a fetch returns). The lock is released; no worker gets
    the task again before ``retry_after`` has passed. At zero retries the case stops as an incident
    naming the element and the message, as a failing script stops it; the owner's retry of the case
    gives the task back to the workers.

    :raises Conflict: another worker holds the task (named)
    :raises TaskNoLongerOpen: the task was completed or cancelled, or its case is not running
    :raises InvalidForm: negative retries or wait
    """
    _check_worker(actor)
    worker = _worker(worker_id)
    if retries < 0:
        raise InvalidForm({"retries": "Zero or more."}, {"retries": retries})
    if retry_after < timedelta(0):
        raise InvalidForm({"retry_after": "Zero or more seconds."}, {"retry_after": retry_after.total_seconds()})
    row = _read(session, task_id)
    instance = read_instance(session, row.instance_id)
    _check_holder(row, worker, instance.status)
    text = (message or "").strip()[:2000] or "no message"
    if not run(session, _FAIL, {"task_id": row.id, "worker": worker, "left": retries,
                                "not_before": utcnow() + retry_after, "error": text}).rowcount:
        raise CaseChanged
    audit.record(session, EventKind.EXTERNAL_TASK_FAILED, instance=instance, actor=actor, element_id=row.element_id,
                 name=row.name, topic=row.topic, worker_id=worker, external_task_id=row.id, message=text,
                 retries=retries)
    if retries == 0:
        running = RunningInstance.open(session, row.instance_id)
        running.stop(Incident(row.element_id, row.name, f"the worker “{worker}” failed at “{row.name}”: {text}"))
        record_step(session, running, running.save(session))
    return ExternalTaskState(row.id, row.instance_id, row.name, TaskStatus.OPEN, None, None, retries,
                             incident=retries == 0)


_EXTEND = (update(_rows)
           .where(_rows.c.id == bindparam("task_id"), _rows.c.status == TaskStatus.OPEN,
                  _rows.c.worker_id == bindparam("worker"))
           .values(lock_expires_at=bindparam("until")))


def extend_lock(session: Session, actor: User, worker_id: str, task_id: int,
                lock_duration: timedelta) -> ExternalTaskState:
    """Keep the task ``lock_duration`` longer from now (the work takes longer than the worker asked for).

    :raises Conflict: another worker holds the task (named)
    :raises TaskNoLongerOpen: the task was completed or cancelled, or its case is not running
    """
    _check_worker(actor)
    worker = _worker(worker_id)
    until = utcnow() + _duration("lock_duration", lock_duration, MAX_LOCK)
    row = _read(session, task_id)
    _check_holder(row, worker, read_instance(session, row.instance_id).status)
    if not run(session, _EXTEND, {"task_id": row.id, "worker": worker, "until": until}).rowcount:
        raise CaseChanged
    return ExternalTaskState(row.id, row.instance_id, row.name, row.status, worker, until, row.retries_left)
