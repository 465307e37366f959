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

from .actions import start_process
from .db import ApiIdempotencyKey, User
from .errors import InvalidForm
from .rows import InstanceRow

#: the longest key accepted (the column's length)
MAX_KEY = 200


@dataclass(frozen=True)
class Started:
    """The case a start request started; ``replayed`` when an earlier request with the same key did."""

    instance_id: int
    replayed: bool
    row: InstanceRow | None = None


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
        return Started(start_process(session, actor, process_key, values, business_key).id, False)
    if not key or len(key) > MAX_KEY:
        raise InvalidForm({"Idempotency-Key": f"Send 1 to {MAX_KEY} characters."}, {"Idempotency-Key": key})
    digest = _request_hash(process_key, values, business_key)
    earlier = session.scalar(select(ApiIdempotencyKey).where(ApiIdempotencyKey.user_id == actor.id,
                                                             ApiIdempotencyKey.key == key))
    if earlier is not None:
        if earlier.request_hash != digest:
            raise InvalidForm({"Idempotency-Key": "This key was used for a different request; use a new key."},
                              {"Idempotency-Key": key})
        return Started(earlier.instance_id, True)
    row = start_process(session, actor, process_key, values, business_key)
    session.add(ApiIdempotencyKey(user_id=actor.id, key=key, request_hash=digest, instance_id=row.id))
    session.flush()
    return Started(row.id, False, row)
