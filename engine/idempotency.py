"""Starting a case once per ``Idempotency-Key``: a client that retries a start request (its
connection dropped before the answer came) gets the case the first request started.

The key is kept with the SHA-256 of the request (process, values, business key); the same key with
a different request is refused. Two requests with one key racing each other: the unique constraint
on (user, key) lets one insert win; the loser's transaction fails at commit and its retry finds the
winner's case.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .actions import StartedCase, start_case
from .db import ApiIdempotencyKey, HumanTask, ProcessInstance, User
from .errors import InvalidForm, NotFound
from .inbox import NewTask
from .vocabulary import TaskStatus

#: the longest key accepted (the column's length)
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Started:
    """The case a start request started; ``replayed`` when an earlier request with the same key did.

    ``tasks``: what the start made ready; for a replay, the case's tasks open now (read back: a replay is rare).
    """

    instance_id: int
    process_key: str
    title: str
    business_key: str | None
    status: str
    tasks: list[NewTask]
    replayed: bool

    @classmethod
    def new(cls, case: StartedCase) -> Started:
        row = case.row
        return cls(row.id, row.process_key, row.title, case.business_key, row.status, case.created, False)


def _replay(session: Session, instance_id: int) -> Started:
    case = session.get(ProcessInstance, instance_id)
    if case is None:  # the key's foreign key keeps its case; a case deleted by hand is gone
        raise NotFound(f"There is no case {instance_id}.")
    tasks = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                    HumanTask.status == TaskStatus.OPEN).order_by(HumanTask.id))
    return Started(case.id, case.process_key, case.title, case.business_key, case.status,
                   [NewTask(t.id, t.instance_id, t.element_id, t.name, list(t.candidate_roles or []), t.assignee_id)
                    for t in tasks], True)


def _request_hash(process_key: str, values: dict[str, Any], business_key: str | None) -> str:
    body = json.dumps({"process": process_key, "values": values, "business_key": business_key},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def start_once(session: Session, actor: User, process_key: str, values: dict[str, Any],
               business_key: str | None, key: str | None) -> Started:
    """Start ``process_key`` (see :func:`engine.actions.start_process`) unless ``actor`` already started a
    case with the same ``key``; then that case. Without a key every call starts a case.

    :raises InvalidForm: the key is too long or was used for a different request (field ``Idempotency-Key``)
    """
    if key is None:
        return Started.new(start_case(session, actor, process_key, values, business_key))
    if not key or len(key) > MAX_KEY:
        raise InvalidForm({"Idempotency-Key": f"Send 1 to {MAX_KEY} characters."}, {"Idempotency-Key": key})
    digest = _request_hash(process_key, values, business_key)
    earlier = session.scalar(select(ApiIdempotencyKey).where(ApiIdempotencyKey.user_id == actor.id,
                                                             ApiIdempotencyKey.key == key))
    if earlier is not None:
        if earlier.request_hash != digest:
            raise InvalidForm({"Idempotency-Key": "This key was used for a different request; use a new key."},
                              {"Idempotency-Key": key})
        return _replay(session, earlier.instance_id)
    case = start_case(session, actor, process_key, values, business_key)
    session.add(ApiIdempotencyKey(user_id=actor.id, key=key, request_hash=digest, instance_id=case.row.id))
    session.flush()
    return Started.new(case)
