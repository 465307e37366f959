"""The append-only, hash-chained event log.

Events are written in the same transaction as the change they record. At commit, the
transaction's events are sealed onto one global chain: each gets the next sequence
number, the SHA-256 of its predecessor and its own SHA-256 over a canonical JSON form.
The chain head is a single row locked while sealing, so concurrent transactions append
one after the other. :func:`verify` walks the chain and names the first event that was
altered, inserted or deleted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import AuditHead, Event, HumanTask, ProcessInstance, User
from .sql import run

GENESIS = "0" * 64
_PENDING = "deptflow_audit_pending"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(slots=True)
class PendingEvent:
    """An event recorded in this transaction; written with one multi-row INSERT when it commits."""

    kind: str
    at: datetime
    instance_id: int | None
    actor_id: int | None
    task_id: int | None
    element_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    #: the instance object, when its row is not inserted yet: ``instance_id`` is read when sealing
    instance: Any = None

    def row(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "instance_id": self.instance_id, "actor_id": self.actor_id,
                "task_id": self.task_id, "element_id": self.element_id, "data": self.data, "seq": self.seq,
                "prev_hash": self.prev_hash, "hash": self.hash}


def record(
    session: Session,
    kind: str,
    *,
    instance: ProcessInstance | None = None,
    actor: User | None = None,
    task: HumanTask | None = None,
    element_id: str | None = None,
    **data: Any,
) -> PendingEvent:
    """Append one event; it is sealed onto the chain when the session commits.

    Task events carry the task's name, so that the history reads well without the diagram.
    """
    if task is not None:
        data.setdefault("name", task.name)
    event = PendingEvent(
        kind=kind,
        at=utcnow(),
        instance_id=instance.id if instance is not None else None,
        instance=instance if instance is not None and instance.id is None else None,
        actor_id=actor.id if actor is not None else None,
        task_id=task.id if task is not None else None,
        element_id=element_id or (task.element_id if task is not None else None),
        data=_jsonable(data),
    )
    session.info.setdefault(_PENDING, []).append(event)  # inserted, numbered and hashed at commit
    return event


def canonical(event: Any) -> bytes:
    """The bytes an event's hash covers: every recorded field and its predecessor's hash."""
    body = {
        "seq": event.seq,
        "at": event.at.isoformat(timespec="microseconds"),
        "kind": event.kind,
        "instance_id": event.instance_id,
        "actor_id": event.actor_id,
        "task_id": event.task_id,
        "element_id": event.element_id,
        "data": event.data,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(event: Any) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


_LOCK_HEAD = select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
_INSERT_EVENTS = insert(Event.__table__)
_MOVE_HEAD = (update(AuditHead.__table__).where(AuditHead.__table__.c.id == 1)
              .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash")))


@sa_event.listens_for(Session, "before_commit")
def _seal(session: Session) -> None:
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the rest of the transaction first: the head row is locked only for the sealing
    head = run(session, _LOCK_HEAD).one_or_none()
    if head is None:
        run(session, insert(AuditHead.__table__).values(id=1, last_seq=0, last_hash=GENESIS))
        head = (0, GENESIS)
    seq, previous = head
    for event in pending:
        if event.instance is not None:
            event.instance_id = event.instance.id
        seq += 1
        event.seq, event.prev_hash = seq, previous
        event.hash = previous = event_hash(event)
    run(session, _INSERT_EVENTS, [event.row() for event in pending])
    run(session, _MOVE_HEAD, {"new_seq": seq, "new_hash": previous})


def pending_events(session: Session) -> list[PendingEvent]:
    """Events recorded in this transaction and not yet committed."""
    return list(session.info.get(_PENDING, []))


@sa_event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


def events_of(session: Session, instance_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.seq, Event.id)))


@dataclass
class Verification:
    ok: bool
    count: int
    problem: str = ""
    seq: int | None = None
    event_id: int | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact, {self.count} events"
        return f"chain broken at event #{self.seq} (id {self.event_id}): {self.problem}"


_CHAIN_COLUMNS = (Event.id, Event.seq, Event.at, Event.kind, Event.instance_id, Event.actor_id, Event.task_id,
                  Event.element_id, Event.data, Event.prev_hash, Event.hash)


def verify(session: Session, batch: int = 5000) -> Verification:
    """Walk the whole chain in order and report the first event that does not fit."""
    unsealed = session.scalar(select(Event.id).where(Event.seq.is_(None)).limit(1))
    if unsealed is not None:
        return Verification(False, 0, "an event outside the chain (no sequence number) was inserted", None, unsealed)
    previous, count, last_id = GENESIS, 0, None
    while True:
        rows = session.execute(select(*_CHAIN_COLUMNS).where(Event.seq > count).order_by(Event.seq).limit(batch))
        rows = rows.all()
        if not rows:
            break
        for row in rows:
            expected = count + 1
            if row.seq != expected:
                return Verification(False, count, f"event #{expected} is missing (deleted)", row.seq, row.id)
            if row.prev_hash != previous:
                return Verification(False, count, "its predecessor's hash does not match (an event before it was "
                                                  "removed or replaced)", row.seq, row.id)
            if row.hash != event_hash(row):
                return Verification(False, count, "its content does not match its hash (altered)", row.seq, row.id)
            previous, count, last_id = row.hash, expected, row.id
    head = session.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)).one_or_none()
    head_seq, head_hash = head if head is not None else (0, GENESIS)
    if (head_seq, head_hash) != (count, previous):
        return Verification(False, count, f"the chain ends at #{count} but its head says #{head_seq} "
                                          "(the newest events were deleted or the head was edited)", count, last_id)
    return Verification(True, count)
