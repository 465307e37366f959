"""Comments on cases and their tasks, with @mentions.

Everyone who may see a case (:func:`engine.access.may_view_case`) reads its comments and may add
one. A comment's text goes onto the case's audit chain (a ``commented`` event), so the history keeps
it and it cannot be changed unnoticed. ``@username`` tells that user, if they may see the case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import attachments, audit
from .access import may_view_case
from .db import Attachment, Comment, HumanTask, ProcessInstance, User
from .errors import InvalidForm, NotAllowed, NotFound
from .notify import mentioned
from .vocabulary import EventKind

#: the longest comment, in characters (one limit, one message)
MAX_COMMENT = 4000
TOO_LONG = f"Keep a comment to {MAX_COMMENT:,} characters."
EMPTY = "Write something first."
MENTION = re.compile(r"(?<![\w@.])@([a-z0-9][a-z0-9._-]{1,79})", re.IGNORECASE)


@dataclass
class _Case:
    instance: ProcessInstance
    tasks: list[HumanTask]
    events: list


def _case(session: Session, instance_id: int) -> _Case:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)))
    return _Case(instance, tasks, audit.events_of(session, instance_id))


def _sees(actor: User, case: _Case) -> bool:
    return may_view_case(actor, case.instance, case.tasks, case.events)


def mentions(body: str) -> list[str]:
    """The usernames ``@named`` in ``body``, lower-cased, each once, in order (a trailing dot is punctuation)."""
    names: list[str] = []
    for match in MENTION.finditer(body):
        name = match.group(1).lower().rstrip(".")
        if name not in names:
            names.append(name)
    return names


def add(session: Session, actor: User, instance_id: int, body: str, task_id: int | None = None) -> Comment:
    """Comment on a case (on one of its tasks with ``task_id``) and tell the people it mentions.

    :raises NotFound: no such case, or the task is not one of its tasks
    :raises NotAllowed: ``actor`` may not see the case
    :raises InvalidForm: ``body``: empty or longer than :data:`MAX_COMMENT`; nothing is saved
    """
    case = _case(session, instance_id)
    if not _sees(actor, case):
        raise NotAllowed("You took no part in this case.")
    task = next((t for t in case.tasks if t.id == task_id), None) if task_id is not None else None
    if task_id is not None and task is None:
        raise NotFound(f"There is no task {task_id} in this case.")
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise InvalidForm({"body": EMPTY}, {"body": body or ""})
    if len(text) > MAX_COMMENT:
        raise InvalidForm({"body": TOO_LONG}, {"body": body})
    comment = Comment(instance_id=instance_id, task_id=task_id, author_id=actor.id, body=text)
    session.add(comment)
    session.flush()
    told = []
    names = [name for name in mentions(text) if name != actor.username]
    if names:
        for user in session.scalars(select(User).where(User.username.in_(names), User.active.is_(True))):
            if _sees(user, case):
                told.append(user)
    audit.record(session, EventKind.COMMENTED, instance=case.instance, actor=actor, task=task,
                 comment_id=comment.id, text=text, mentioned=sorted(u.username for u in told))
    mentioned(session, told, actor, case.instance, text)
    return comment


def add_on_task(session: Session, actor: User, task_id: int, body: str) -> Comment:
    """Comment on a task: a comment on its case, marked with the task."""
    instance_id = session.scalar(select(HumanTask.instance_id).where(HumanTask.id == task_id))
    if instance_id is None:
        raise NotFound(f"There is no task {task_id}.")
    return add(session, actor, instance_id, body, task_id)


@dataclass
class Discussion:
    """What the case and task pages show below the case: comments and files, and whether ``actor`` may add."""

    instance_id: int
    comments: list[Comment] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)
    may_add: bool = False


def discussion(session: Session, actor: User, instance_id: int, *, visible: bool = False) -> Discussion:
    """The case's comments and files, if ``actor`` may see the case (else an empty, closed discussion:
    the manager of a role opens its tasks without seeing their cases).

    :param visible: the caller already checked that ``actor`` may see the case
    """
    if not visible and not _sees(actor, _case(session, instance_id)):
        return Discussion(instance_id)
    comments = list(session.scalars(select(Comment).where(Comment.instance_id == instance_id).order_by(Comment.id)))
    return Discussion(instance_id, comments, attachments.of_case(session, instance_id), may_add=True)
