"""The append-only, hash-chained event log.

Events are written in the same transaction as the change they record. At commit, the
transaction's events are sealed onto their chain: each gets the next sequence number of
that chain, the SHA-256 of its predecessor and its own SHA-256 over a canonical JSON form.

There is one chain per case and one global chain. A case's chain holds everything that
happens to it after it started and is sealed under the lock of the case's own row, so
work on different cases never waits on each other (one global head row would serialise
every commit of every web process). The global chain holds what happens outside cases
(logins, users, published diagrams) and each case's ``started`` event, which is the first
link of the case's chain: deleting a whole case from the log breaks the global chain.

:func:`verify` walks every chain and names the first event that was altered, inserted or
deleted; the head of each chain (the ``audit_head`` row, a case's ``audit_seq`` and
``audit_hash``) notices the newest events being removed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker

from . import audit_signing
from .clock import utcnow
from .db import AuditHead, Event, ProcessInstance
from .sql import run, written

GENESIS = "0" * 64
GLOBAL_CHAIN = 0
_PENDING = "deptflow_audit_pending"
#: the heads of case chains this transaction read while it held the case's row lock (see :func:`locked_head`)
_HEADS = "deptflow_audit_heads"


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
    #: the case's process: a copy for the dashboard, outside the hash (``instance_id`` is in it)
    process_key: str | None = None
    chain: int = GLOBAL_CHAIN
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None

    def row(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "instance_id": self.instance_id, "actor_id": self.actor_id,
                "task_id": self.task_id, "element_id": self.element_id, "data": self.data, "chain": self.chain,
                "seq": self.seq, "prev_hash": self.prev_hash, "hash": self.hash, "process_key": self.process_key}


class HasId(Protocol):
    """A case or user as an event names it: an ORM object or a row read with Core."""

    @property
    def id(self) -> int: ...


class TaskLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def element_id(self) -> str: ...


def record(
    session: Session,
    kind: str,
    *,
    instance: HasId | None = None,
    actor: HasId | None = None,
    task: TaskLike | None = None,
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
        actor_id=actor.id if actor is not None else None,
        task_id=task.id if task is not None else None,
        element_id=element_id or (task.element_id if task is not None else None),
        data=_jsonable(data),
        process_key=getattr(instance, "process_key", None),
    )
    session.info.setdefault(_PENDING, []).append(event)  # inserted, numbered and hashed at commit
    return event


def canonical(event: Any) -> bytes:
    """The bytes an event's hash covers: every recorded field and its predecessor's hash."""
    body = {
        "chain": event.chain,
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
              .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"),
                      last_signature=bindparam("new_signature")))
_instances = ProcessInstance.__table__
_LOCK_CASE_HEAD = (select(_instances.c.audit_seq, _instances.c.audit_hash)
                   .where(_instances.c.id == bindparam("instance_id")).with_for_update())
_MOVE_CASE_HEAD = (update(_instances).where(_instances.c.id == bindparam("instance_id"))
                   .values(audit_seq=bindparam("new_seq"), audit_hash=bindparam("new_hash"),
                           audit_signature=bindparam("new_signature")))
_STARTED_HASH = select(Event.hash).where(Event.chain == GLOBAL_CHAIN, Event.kind == "started",
                                         Event.instance_id == bindparam("instance_id"))


def attach(factory: sessionmaker) -> None:
    """Seal the events of every session ``factory`` makes when it commits; forget them on rollback."""
    sa_event.listen(factory, "before_commit", _seal)
    sa_event.listen(factory, "after_rollback", _forget)


def locked_head(session: Session, instance_id: int, seq: int, hash_: str | None) -> None:
    """The head of the case's chain as the transaction's write of the case's row returned it: the write
    holds the row's lock until the commit, which therefore seals onto this head without reading it again."""
    session.info.setdefault(_HEADS, {})[instance_id] = (seq, hash_)


def _seal(session: Session) -> None:
    heads: dict[int, tuple[int, str | None]] = session.info.pop(_HEADS, {})
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the rest of the transaction first: heads are locked only for the sealing
    by_case: dict[int, list[PendingEvent]] = {}
    global_events = []
    for event in pending:
        if event.instance_id is None or event.kind == "started":
            global_events.append(event)
        else:
            by_case.setdefault(event.instance_id, []).append(event)
    started = _seal_global(session, global_events) if global_events else {}
    for instance_id in sorted(by_case):  # one lock order for every transaction
        _seal_case(session, instance_id, by_case[instance_id], started, heads.get(instance_id))
    run(session, _INSERT_EVENTS, [event.row() for event in pending])


def _link(events: list[PendingEvent], chain: int, seq: int, previous: str) -> tuple[int, str]:
    for event in events:
        seq += 1
        event.chain, event.seq, event.prev_hash = chain, seq, previous
        event.hash = previous = event_hash(event)
    return seq, previous


def _seal_global(session: Session, events: list[PendingEvent]) -> dict[int, str]:
    """Append to the global chain; returns the hash of each ``started`` event by case."""
    head = run(session, _LOCK_HEAD).one_or_none()
    if head is None:
        run(session, insert(AuditHead.__table__).values(id=1, last_seq=0, last_hash=GENESIS))
        head = (0, GENESIS)
    seq, previous = _link(events, GLOBAL_CHAIN, *head)
    run(session, _MOVE_HEAD, {"new_seq": seq, "new_hash": previous,
                              "new_signature": _sign_head(session, GLOBAL_CHAIN, seq, previous)})
    return {e.instance_id: e.hash for e in events if e.kind == "started" and e.instance_id is not None}


def _seal_case(session: Session, instance_id: int, events: list[PendingEvent], started: dict[int, str],
               head: tuple[int, str | None] | None) -> None:
    """Append to the case's chain under the lock of its row (already held by a completion's UPDATE).

    A case started in this transaction has no chain yet and nobody else can see it: its chain
    begins at its ``started`` event, without reading the head. Nor is it read when the transaction's
    guarded write of the case returned it (``head``, :func:`locked_head`).
    """
    if instance_id in started:
        seq, previous = 0, started[instance_id]
    elif head is not None:
        seq, previous = head
    else:
        seq, previous = run(session, _LOCK_CASE_HEAD, {"instance_id": instance_id}).one()
    if previous is None:  # the case's first link follows its ``started`` event in the global chain
        previous = run(session, _STARTED_HASH, {"instance_id": instance_id}).scalar()
    seq, previous = _link(events, instance_id, seq, previous or GENESIS)
    signature = _sign_head(session, instance_id, seq, previous)
    run(session, _MOVE_CASE_HEAD, {"instance_id": instance_id, "new_seq": seq, "new_hash": previous,
                                   "new_signature": signature})
    written(session, ProcessInstance, instance_id, audit_seq=seq, audit_hash=previous, audit_signature=signature)


def _signer(session: Session) -> audit_signing.AuditSigner | None:
    """The head signer of the engine that made ``session`` (None without a key); a session made
    elsewhere reads the configured key."""
    engine = session.info.get("deptflow")
    if engine is not None:
        return engine.audit_signer
    return audit_signing.configured_signer(session.get_bind().engine.url)


def _sign_head(session: Session, chain: int, seq: int, hash_: str) -> str | None:
    signer = _signer(session)
    return signer.sign_head(chain, seq, hash_) if signer is not None else None


def pending_events(session: Session) -> list[PendingEvent]:
    """Events recorded in this transaction and not yet committed."""
    return list(session.info.get(_PENDING, []))


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_HEADS, None)


def events_of(session: Session, instance_id: int) -> list[Event]:
    """A case's events in the order they happened (ids grow in commit order within a case)."""
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id).order_by(Event.id)))


@dataclass
class Verification:
    ok: bool
    count: int
    problem: str = ""
    seq: int | None = None
    event_id: int | None = None
    chain: int = GLOBAL_CHAIN
    checkpoints: int | None = None  # how many checkpoints were matched, when some were given

    def __str__(self) -> str:
        if self.ok:
            matched = f", {self.checkpoints} checkpoints matched" if self.checkpoints is not None else ""
            return f"chain intact, {self.count} events{matched}"
        where = "the global chain" if self.chain == GLOBAL_CHAIN else f"the chain of case {self.chain}"
        return f"chain broken at event #{self.seq} of {where} (id {self.event_id}): {self.problem}"


_CHAIN_COLUMNS = (Event.id, Event.chain, Event.seq, Event.at, Event.kind, Event.instance_id, Event.actor_id,
                  Event.task_id, Event.element_id, Event.data, Event.prev_hash, Event.hash)


class _Broken(Exception):
    def __init__(self, problem: str, seq: int | None, event_id: int | None, chain: int):
        super().__init__(problem)
        self.result = Verification(False, 0, problem, seq, event_id, chain)


class _ChainWalk:
    """Checks events chain by chain (global first, then each case) as they come, in (chain, seq) order.

    With a public key, each head's signature too; with checkpoints, that each chain passes through
    the ``(seq, hash)`` they recorded.
    """

    def __init__(self, heads: dict[int, tuple[int, str]], signatures: dict[int, str | None] | None = None,
                 public_key: Any = None, checkpoints: Sequence[audit_signing.Checkpoint] = ()):
        self.heads = heads  # chain → (last seq, last hash) as its head row says
        self.signatures, self.public_key = signatures or {}, public_key
        self.expected: dict[tuple[int, int], list[tuple[str, audit_signing.Checkpoint]]] = {}
        for checkpoint in checkpoints:
            for chain, seq, hash_ in checkpoint.heads:
                self.expected.setdefault((chain, seq), []).append((hash_, checkpoint))
        self.started: dict[int, str] = {}  # case → hash of its ``started`` event (the case chain's first link)
        self.seen: set[int] = set()
        self.chain: int | None = None
        self.seq, self.previous, self.last_id, self.count = 0, GENESIS, None, 0

    def add(self, row: Any) -> None:
        if row.chain != self.chain:
            self.close()
            self.chain, self.seq, self.last_id = row.chain, 0, None
            self.previous = GENESIS if row.chain == GLOBAL_CHAIN else self.started.get(row.chain)
            if self.previous is None:
                raise _Broken("the case's started event is missing from the global chain (deleted)",
                              row.seq, row.id, row.chain)
        if row.seq != self.seq + 1:
            raise _Broken(f"event #{self.seq + 1} is missing (deleted)", row.seq, row.id, row.chain)
        if row.prev_hash != self.previous:
            raise _Broken("its predecessor's hash does not match (an event before it was removed or replaced)",
                          row.seq, row.id, row.chain)
        if row.hash != event_hash(row):
            raise _Broken("its content does not match its hash (altered)", row.seq, row.id, row.chain)
        for hash_, checkpoint in self.expected.pop((row.chain, row.seq), ()):
            if row.hash != hash_:
                raise _Broken(f"it is not the event checkpoint {checkpoint.source} (taken at {checkpoint.taken_at}) "
                              "recorded here (the chain was rewritten)", row.seq, row.id, row.chain)
        if row.chain == GLOBAL_CHAIN and row.kind == "started" and row.instance_id is not None:
            self.started[row.instance_id] = row.hash
        self.seq, self.previous, self.last_id = row.seq, row.hash, row.id
        self.count += 1

    def close(self) -> None:
        """The chain just walked must end where its head says."""
        if self.chain is None:
            return
        self.seen.add(self.chain)
        head_seq, head_hash = self.heads.get(self.chain, (0, GENESIS))
        if (head_seq, head_hash) != (self.seq, self.previous):
            raise _Broken(f"the chain ends at #{self.seq} but its head says #{head_seq} (the newest events were "
                          "deleted or the head was edited)", self.seq, self.last_id, self.chain)
        if self.public_key is not None and self.seq:
            signature = self.signatures.get(self.chain)
            if signature is None:
                raise _Broken("its head is not signed (written without the key, or its signature was removed)",
                              self.seq, self.last_id, self.chain)
            if not audit_signing.head_signature_valid(self.public_key, self.chain, self.seq, self.previous,
                                                      signature):
                raise _Broken("its head's signature does not match (the chain was rewritten or its head edited "
                              "without the key)", self.seq, self.last_id, self.chain)

    def finish(self) -> None:
        self.close()
        for chain, (head_seq, _hash) in sorted(self.heads.items()):
            if chain not in self.seen and head_seq:
                raise _Broken(f"its head says #{head_seq} but the chain has no events (deleted)", 1, None, chain)
        if self.expected:  # a checkpointed event the walk never reached
            chain, seq = min(self.expected)
            checkpoint = self.expected[chain, seq][0][1]
            raise _Broken(f"checkpoint {checkpoint.source} (taken at {checkpoint.taken_at}) recorded it, but the "
                          "chain ends before it (events deleted)", seq, None, chain)


def verify(session: Session, batch: int = 5000,
           checkpoints: Sequence[audit_signing.Checkpoint] = ()) -> Verification:
    """Walk every chain in order and report the first event that does not fit.

    With a key (the configured one, else the one that signed ``checkpoints``) every head must
    carry its valid signature; each checkpoint (read with :func:`audit_signing.read_checkpoint`)
    must be signed by that key, and every chain must still pass through the heads it recorded.
    """
    signer = _signer(session)
    public_key = signer.public_key if signer is not None else checkpoints[0].public() if checkpoints else None
    for checkpoint in checkpoints:
        if public_key is not None and checkpoint.public_key != audit_signing.public_hex(public_key):
            return Verification(False, 0, f"checkpoint {checkpoint.source} was signed with another key")
    unsealed = session.scalar(select(Event.id).where(Event.seq.is_(None)).limit(1))
    if unsealed is not None:
        return Verification(False, 0, "an event outside the chain (no sequence number) was inserted", None, unsealed)
    heads, signatures = {}, {}
    for chain, seq, hash_, signature in audit_signing.current_heads(session):
        heads[chain], signatures[chain] = (seq, hash_), signature
    heads.setdefault(GLOBAL_CHAIN, (0, GENESIS))
    walk = _ChainWalk(heads, signatures, public_key, checkpoints)
    position = (-1, 0)
    try:
        while True:
            rows = session.execute(select(*_CHAIN_COLUMNS).where(tuple_(Event.chain, Event.seq) > position)
                                   .order_by(Event.chain, Event.seq).limit(batch)).all()
            for row in rows:
                walk.add(row)
            if not rows:
                break
            position = (rows[-1].chain, rows[-1].seq)
        walk.finish()
    except _Broken as broken:
        broken.result.count = walk.count
        return broken.result
    return Verification(True, walk.count, checkpoints=len(checkpoints) if checkpoints else None)


def verify_case(instance: ProcessInstance, events: list[Event],
                signer: audit_signing.AuditSigner | None = None) -> Verification:
    """Check one case's log from its events (as :func:`events_of` returns them): its ``started``
    event is intact and its own chain follows from it, unbroken, up to the head on the case's row,
    and, with the deployment's ``signer``, that head's signature.

    That the ``started`` event also sits unbroken in the global chain is :func:`verify`'s part.
    """
    started = [e for e in events if e.chain == GLOBAL_CHAIN and e.kind == "started"]
    walk = _ChainWalk({instance.id: (instance.audit_seq, instance.audit_hash or GENESIS)})
    try:
        if len(started) != 1:
            raise _Broken(f"the case has {len(started)} started events in the global chain", None, None, GLOBAL_CHAIN)
        if started[0].hash != event_hash(started[0]):
            raise _Broken("its content does not match its hash (altered)", started[0].seq, started[0].id,
                          GLOBAL_CHAIN)
        walk.started[instance.id] = started[0].hash
        for event in sorted((e for e in events if e.chain == instance.id), key=lambda e: e.seq or 0):
            walk.add(event)
        walk.finish()
        if signer is not None and instance.audit_seq and not audit_signing.head_signature_valid(
                signer.public_key, instance.id, instance.audit_seq, instance.audit_hash or GENESIS,
                instance.audit_signature):
            raise _Broken("its head's signature is missing or does not match (the chain was rewritten)",
                          instance.audit_seq, None, instance.id)
    except _Broken as broken:
        broken.result.count = walk.count
        return broken.result
    return Verification(True, walk.count + 1)

