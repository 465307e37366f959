"""The per-instance event log, written in the same transaction as the change it records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import Event, HumanTask, ProcessInstance, User


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


def record(
    session: Session,
    kind: str,
    *,
    instance: ProcessInstance | None = None,
    actor: User | None = None,
    task: HumanTask | None = None,
    element_id: str | None = None,
    **data: Any,
) -> Event:
    """Append one event (``started``, ``claimed``, ``unclaimed``, ``completed``, ``ended``...).

    Task events carry the task's name, so that the history reads well without the diagram.
    """
    if task is not None:
        data.setdefault("name", task.name)
    event = Event(
        kind=kind,
        at=utcnow(),
        instance_id=instance.id if instance is not None else None,
        actor_id=actor.id if actor is not None else None,
        task_id=task.id if task is not None else None,
        element_id=element_id or (task.element_id if task is not None else None),
        data=_jsonable(data),
    )
    session.add(event)
    return event


def events_of(session: Session, instance_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.id)))
