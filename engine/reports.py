"""Monthly statistics of a process (e.g. the clerk's engineering-drawing applications)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import HumanTask, Process, ProcessInstance, User
from .errors import NotAllowed, NotFound
from .inbox import open_tasks_of
from .permissions import can
from .vocabulary import Permission


@dataclass
class MonthlyStatistics:
    process: Process
    month: str
    instances: list[ProcessInstance]
    open_tasks: dict[int, list[HumanTask]]
    by_status: dict[str, int]
    per_month: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return len(self.instances)


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def may_read_statistics(session: Session, actor: User, process_key: str) -> bool:
    """The process's owner role and holders of :attr:`Permission.STATISTICS` read its statistics."""
    if can(actor, Permission.STATISTICS):
        return True
    owner = session.scalar(select(Process.owner_role).where(Process.key == process_key))
    return owner is not None and owner in actor.role_keys


def monthly_statistics(session: Session, actor: User, process_key: str, year: int, month: int) -> MonthlyStatistics:
    """Cases of ``process_key`` started in the month, counts by status, and the last 12 months.

    :raises NotAllowed: unless ``actor`` holds the process's owner role or may read all statistics
    """
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if not may_read_statistics(session, actor, process_key):
        raise NotAllowed(f"Statistics of “{process.title}” are for its owner and management.")
    start, end = _month_start(year, month), _month_start(year, month + 1)
    instances = list(
        session.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.process_key == process_key,
                   ProcessInstance.started_at >= start, ProcessInstance.started_at < end)
            .order_by(ProcessInstance.started_at)
        )
    )
    year_ago = _month_start(year, month - 11)
    started = session.scalars(
        select(ProcessInstance.started_at).where(
            ProcessInstance.process_key == process_key,
            ProcessInstance.started_at >= year_ago, ProcessInstance.started_at < end,
        )
    )
    counts = Counter(moment.strftime("%Y-%m") for moment in started)
    months = [_month_start(year, month - 11 + i).strftime("%Y-%m") for i in range(12)]
    return MonthlyStatistics(
        process=process,
        month=start.strftime("%Y-%m"),
        instances=instances,
        open_tasks=open_tasks_of(session, [i.id for i in instances]),
        by_status=dict(Counter(i.status for i in instances)),
        per_month=[(m, counts.get(m, 0)) for m in months],
    )
