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
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import AuditHead, Event, HumanTask, ProcessInstance, User

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
    """Append one event; it is sealed onto the chain when the session commits.

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


@sa_event.listens_for(Session, "before_commit")
def _seal(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the rest of the transaction first: the head row is locked only for the sealing
    head = session.scalars(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one_or_none()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS)
        session.add(head)
    seq, previous = head.last_seq, head.last_hash
    for event in pending:
        seq += 1
        event.seq, event.prev_hash = seq, previous
        event.hash = previous = event_hash(event)
    session.add_all(pending)
    head.last_seq, head.last_hash = seq, previous
    session.flush()


def pending_events(session: Session) -> list[Event]:
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
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS)
    if (head_seq, head_hash) != (count, previous):
        return Verification(False, count, f"the chain ends at #{count} but its head says #{head_seq} "
                                          "(the newest events were deleted or the head was edited)", count, last_id)
    return Verification(True, count)
