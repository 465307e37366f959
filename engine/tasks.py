"""The inbox projection: ``human_tasks`` rows kept in step with each workflow.

Inbox queries read only these rows (indexed by status, role, assignee and due date),
never the serialized workflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload, lazyload

from . import audit, sandbox
from .assignment import resolve_assignee
from .clock import utcnow
from .db import HumanTask, ProcessInstance, TaskCandidate, User
from .definitions import ParsedDefinition, due_at
from .expressions import literal_or_expression


@dataclass
class Inbox:
    assigned: list[HumanTask]
    available: list[HumanTask]

    @property
    def count(self) -> int:
        return len(self.assigned) + len(self.available)


def ready_user_tasks(workflow: BpmnWorkflow) -> list:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


def sync(
    session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, definition: ParsedDefinition
) -> list[HumanTask]:
    """Create rows for newly ready user tasks; cancel open rows whose task went away.

    :returns: the rows created
    """
    open_rows = {
        row.spiff_task_id: row
        for row in session.scalars(
            select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
        )
    }
    created = []
    now = utcnow()
    for spiff_task in ready_user_tasks(workflow):
        key = str(spiff_task.id)
        if open_rows.pop(key, None) is not None:
            continue
        element_id = spiff_task.task_spec.bpmn_id
        info = definition.user_tasks.get(element_id)
        row = HumanTask(
            instance_id=instance.id,
            spiff_task_id=key,
            element_id=element_id,
            name=spiff_task.task_spec.bpmn_name or element_id,
            created_at=now,
            status="open",
            priority=info.priority if info else 50,
            due_at=_due(info.due, spiff_task.data, now) if info else None,
            assignee_id=resolve_assignee(session, info.assignee, instance) if info else None,
            candidates=[TaskCandidate(role_key=role) for role in (info.candidate_roles if info else [])],
        )
        if row.assignee_id is not None:
            row.claimed_at = now
        session.add(row)
        created.append(row)
    for row in open_rows.values():
        row.status = "cancelled"
        audit.record(session, "task_cancelled", instance=instance, task=row)
    session.flush()
    for row in created:
        audit.record(
            session, "task_created", instance=instance, task=row,
            candidate_roles=row.candidate_roles, assignee_id=row.assignee_id,
        )
    return created


def _due(expression: str | None, data: dict, now: datetime) -> datetime | None:
    """``camunda:dueDate``: an ISO 8601 duration or date-time, or ``${expression}`` on the process data."""
    if not expression:
        return None
    is_literal, text = literal_or_expression(expression)
    if not is_literal:
        try:
            text = str(sandbox.evaluate(text, data))
        except Exception:  # noqa: BLE001 - a bad expression leaves the task undated, it must not block the case
            return None
    return due_at(text, now)


def _open_tasks() -> Select:
    """Open tasks with what an inbox row shows (case, process), without the users a row does not show."""
    return (
        select(HumanTask)
        .options(lazyload(HumanTask.assignee), lazyload(HumanTask.completed_by),
                 joinedload(HumanTask.instance).lazyload(ProcessInstance.started_by))
        .where(HumanTask.status == "open")
        .order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.priority.desc(), HumanTask.id)
    )


def inbox_queries(actor: User, limit: int = 200) -> tuple[Select, Select | None]:
    """The two inbox queries: tasks assigned to ``actor``; unclaimed tasks of ``actor``'s roles."""
    assigned = _open_tasks().where(HumanTask.assignee_id == actor.id).limit(limit)
    roles = sorted(actor.role_keys)
    if not roles:
        return assigned, None
    for_my_roles = select(TaskCandidate.task_id).where(TaskCandidate.role_key.in_(roles))
    available = _open_tasks().where(HumanTask.assignee_id.is_(None), HumanTask.id.in_(for_my_roles)).limit(limit)
    return assigned, available


def inbox(session: Session, actor: User, limit: int = 200) -> Inbox:
    """Tasks assigned to ``actor`` and unclaimed tasks open for ``actor``'s roles.

    Sorted by due date (earliest first, undated last), then priority (highest first).
    """
    assigned, available = inbox_queries(actor, limit)
    return Inbox(assigned=list(session.scalars(assigned)),
                 available=list(session.scalars(available)) if available is not None else [])


def open_tasks_of(session: Session, instance_ids: list[int]) -> dict[int, list[HumanTask]]:
    result: dict[int, list[HumanTask]] = {i: [] for i in instance_ids}
    if instance_ids:
        query = select(HumanTask).where(HumanTask.instance_id.in_(instance_ids), HumanTask.status == "open")
        for row in session.scalars(query.order_by(HumanTask.id)):
            result[row.instance_id].append(row)
    return result
