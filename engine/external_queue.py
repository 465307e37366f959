"""The external task queue: ``external_tasks`` rows kept in step with each workflow (a projection, as
:mod:`engine.inbox` keeps ``human_tasks``).

SpiffWorkflow runs a service task as a script without a script: it returns nothing, so the task is
left STARTED and the case waits there. An external service task (``camunda:type="external"``) is
such a task with a topic; its row is what workers fetch and lock (:mod:`engine.external_tasks`),
and the workflow is never read to find work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import ExternalTask
from .definitions import ParsedDefinition
from .sql import run
from .vocabulary import TaskStatus

_rows = ExternalTask.__table__


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """An external task row a step created or cancelled (the audit events name it)."""

    id: int
    element_id: str
    name: str
    topic: str


def waiting(workflow: BpmnWorkflow, definition: ParsedDefinition) -> list[Any]:
    """The workflow's external service tasks that wait for a worker."""
    topics = definition.external_topics
    if not topics:
        return []
    return [t for t in workflow.get_tasks(state=TaskState.STARTED) if getattr(t.task_spec, "bpmn_id", None) in topics]


_OPEN = select(_rows.c.spiff_task_id).where(_rows.c.instance_id == bindparam("instance_id"),
                                            _rows.c.status == TaskStatus.OPEN)
_INSERT = insert(_rows).returning(_rows.c.id, sort_by_parameter_order=True)


def sync(session: Session, instance: Any, workflow: BpmnWorkflow,
         definition: ParsedDefinition) -> tuple[list[ExternalRef], list[ExternalRef]]:
    """Create rows for external tasks that began to wait; cancel open rows whose task went away.

    A definition without external tasks costs nothing (no query).

    :returns: the rows created and the rows cancelled
    """
    if not definition.external_topics:
        return [], []
    now_waiting = {str(t.id): t for t in waiting(workflow, definition)}
    open_before = set(run(session, _OPEN, {"instance_id": instance.id}).scalars())
    cancelled = _cancel(session, instance.id, open_before - now_waiting.keys())
    now = utcnow()
    rows = [{"instance_id": instance.id, "spiff_task_id": key, "element_id": task.task_spec.bpmn_id,
             "name": task.task_spec.bpmn_name or task.task_spec.bpmn_id,
             "topic": definition.external_topics[task.task_spec.bpmn_id], "status": TaskStatus.OPEN,
             "created_at": now} for key, task in now_waiting.items() if key not in open_before]
    if not rows:
        return [], cancelled
    ids = run(session, _INSERT, rows).scalars().all()
    return [ExternalRef(i, r["element_id"], r["name"], r["topic"]) for i, r in zip(ids, rows, strict=True)], cancelled


def _cancel(session: Session, instance_id: int, spiff_ids: set[str]) -> list[ExternalRef]:
    if not spiff_ids:
        return []
    return [ExternalRef(*row) for row in session.execute(
        update(_rows)
        .where(_rows.c.instance_id == instance_id, _rows.c.spiff_task_id.in_(spiff_ids),
               _rows.c.status == TaskStatus.OPEN)
        .values(status=TaskStatus.CANCELLED, lock_expires_at=None)
        .returning(_rows.c.id, _rows.c.element_id, _rows.c.name, _rows.c.topic))]


_CANCEL_ALL = (update(_rows)
               .where(_rows.c.instance_id == bindparam("case_id"), _rows.c.status == TaskStatus.OPEN)
               .values(status=TaskStatus.CANCELLED, lock_expires_at=None))
_RESET_RETRIES = (update(_rows)
                  .where(_rows.c.instance_id == bindparam("case_id"), _rows.c.status == TaskStatus.OPEN,
                         _rows.c.retries_left == 0)
                  .values(retries_left=None, retry_at=None, worker_id=None, lock_expires_at=None))


def cancel_all(session: Session, instance_id: int) -> None:
    """The case was cancelled: its external tasks leave the queue (a late completion is refused)."""
    run(session, _CANCEL_ALL, {"case_id": instance_id})


def reset_retries(session: Session, instance_id: int) -> None:
    """The case's owner retried it: external tasks whose worker gave up are fetched again."""
    run(session, _RESET_RETRIES, {"case_id": instance_id})
