"""The per-case summary rows of the dashboard (:class:`engine.db.CaseSummary`): written by one INSERT … SELECT
when a case ends, and for every finished case at once by the upgrade that adds the table (revision 0013).

Both use the same statement, so a summary reads the same whether the engine wrote it or the upgrade did. The
flags are computed by the database from the case's task rows and decision events: no workflow is loaded and the
engine's step pays one statement, only on the step that ends a case. A step's own gateway decisions are not in
the events table yet (the audit log seals them at commit): the engine passes their element ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, false, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from .db import CaseSummary, Event, HumanTask, ProcessInstance
from .vocabulary import EventKind, InstanceStatus, TaskStatus


def seconds(dialect: str, later: Any, earlier: Any) -> ColumnElement[float]:
    """``later − earlier`` in seconds, on PostgreSQL and SQLite."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _summaries(dialect: str, where: ColumnElement[bool], pending_decisions: list[str]) -> Any:
    """``INSERT INTO case_summaries SELECT …`` for the finished cases that ``where`` selects."""
    i, t, e = ProcessInstance, HumanTask, Event
    finished = [where, i.status == InstanceStatus.COMPLETED, i.ended_at.is_not(None)]
    # uncorrelated subqueries over the selected cases' rows: run once (a hashed set), not once per case
    repeated_task = (select(t.instance_id).join(i, i.id == t.instance_id).where(*finished,
                                                                                 t.status == TaskStatus.COMPLETED)
                     .group_by(t.instance_id, t.element_id).having(func.count() > 1))
    decisions = [*finished, e.kind == EventKind.GATEWAY_DECISION]
    repeated_decision = (select(e.instance_id).join(i, i.id == e.instance_id).where(*decisions)
                         .group_by(e.instance_id, e.element_id).having(func.count() > 1))
    late_task = (select(t.instance_id).join(i, i.id == t.instance_id)
                 .where(*finished, t.status == TaskStatus.COMPLETED, t.due_at.is_not(None),
                        t.completed_at > t.due_at))
    reworked = [i.id.in_(repeated_task), i.id.in_(repeated_decision)]
    if pending_decisions:
        if len(set(pending_decisions)) < len(pending_decisions):
            reworked.append(literal(True))
        decided_before = select(e.instance_id).join(i, i.id == e.instance_id).where(
            *decisions, e.element_id.in_(set(pending_decisions)))
        reworked.append(i.id.in_(decided_before))
    rows = select(i.id, i.process_key, i.started_by_id, i.started_at, i.ended_at,
                  seconds(dialect, i.ended_at, i.started_at), or_(false(), *reworked), i.id.in_(late_task)
                  ).where(*finished)
    s = CaseSummary
    return insert(s).from_select([s.instance_id, s.process_key, s.started_by_id, s.started_at, s.finished_at,
                                  s.cycle_seconds, s.reworked, s.late], rows)


def record_finished(session: Session, instance_id: int, pending_decisions: Iterable[str]) -> None:
    """The summary of a case that has just ended (its row and task rows written, this transaction's
    gateway decisions of the case in ``pending_decisions``): one statement."""
    dialect = session.get_bind().dialect.name
    session.execute(_summaries(dialect, ProcessInstance.id == instance_id, list(pending_decisions)))


def backfill(connection: Connection) -> None:
    """The summaries of every finished case that has none (the upgrade to revision 0013, the benchmark's
    bulk-inserted cases)."""
    have = select(CaseSummary.instance_id)
    connection.execute(_summaries(connection.dialect.name, ProcessInstance.id.not_in(have), []))
