"""Notifications: an outbox filled in the same transaction as the change, read in the web UI
and e-mailed by the worker through SMTP when ``DEPTFLOW_SMTP_HOST`` is set.

Kinds: ``new_task`` (for you or your role), ``escalated`` (a deadline passed and the case was
escalated to you, or a reminder about a task you hold), ``due_soon``, ``overdue``,
``request_finished`` (a case you started ended), ``incident`` (a case of a process your role owns
stopped and waits for a fix), ``mentioned`` (someone named you in a comment on a case you may see).
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, literal, select, update
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import HumanTask, Notification, Process, ProcessInstance, Role, User, UserRole
from .sql import run
from .vocabulary import TaskStatus

MAX_EMAIL_ATTEMPTS = 5
DUE_SOON = timedelta(hours=24)


_RECIPIENT = (User.id, User.email, User.email_notifications)
_USER = select(*_RECIPIENT).where(User.id == bindparam("user_id"), User.active.is_(True))
_INSERT = insert(Notification.__table__)
_notifications = Notification.__table__
_EMAIL_STATE = case((and_(User.email.is_not(None), User.email != "", User.email_notifications.is_(True)), "pending"),
                    else_="off")


def _insert_for(who: Any) -> Any:
    """``INSERT INTO notifications … SELECT`` one row per active user ``who`` selects (the recipients are
    not read first: this runs inside every step that makes a task)."""
    c = _notifications.c
    rows = select(User.id, *(bindparam(name, type_=c[name].type) for name in ("kind", "message", "instance_id",
                                                                             "task_id", "created_at")),
                  bindparam("created_at", type_=c.created_at.type), _EMAIL_STATE, literal(0, c.email_attempts.type))
    return insert(_notifications).from_select(
        ["user_id", "kind", "message", "instance_id", "task_id", "created_at", "next_attempt_at", "email_state",
         "email_attempts"], rows.where(User.active.is_(True), who))


_TO_ASSIGNEE = _insert_for(User.id == bindparam("user_id"))
_TO_ROLES = _insert_for(User.id.in_(select(UserRole.user_id).where(
    UserRole.role_key.in_(bindparam("roles", expanding=True)))))


def _add_for_task(session: Session, task: Any, kind: str, message: str, instance_id: int) -> None:
    """One notification for the assignee of ``task``, or for every active user of its roles."""
    params = {"kind": kind, "message": message[:500], "instance_id": instance_id, "task_id": task.id,
              "created_at": utcnow()}
    if task.assignee_id is not None:
        run(session, _TO_ASSIGNEE, {**params, "user_id": task.assignee_id})
    elif task.candidate_roles:
        run(session, _TO_ROLES, {**params, "roles": list(task.candidate_roles)})


def _add(session: Session, users: Iterable[Any], kind: str, message: str, *,
         instance_id: int | None = None, task_id: int | None = None) -> None:
    """One notification per user, in one multi-row INSERT (this runs inside every task completion)."""
    now = utcnow()
    rows = [{"user_id": user.id, "kind": kind, "message": message[:500], "instance_id": instance_id,
             "task_id": task_id, "created_at": now, "next_attempt_at": now,
             "email_state": "pending" if user.email and user.email_notifications else "off"}
            for user in users]
    if rows:
        run(session, _INSERT, rows)


def task_created(session: Session, task: Any, instance: Any, *, escalated: bool = False) -> None:
    """Tell the assignee, or everybody of the task's roles, that there is work for them."""
    if escalated:
        message = f"Escalated to you: “{task.name}” — {instance.title}"
    else:
        message = f"New task “{task.name}” — {instance.title}"
    _add_for_task(session, task, "escalated" if escalated else "new_task", message, instance.id)


def reminder(session: Session, task: HumanTask, instance: ProcessInstance, timer_name: str) -> None:
    """A non-interrupting deadline on a task passed: remind whoever holds it."""
    _add_for_task(session, task, "escalated",
                  f"Reminder ({timer_name}): “{task.name}” is still waiting — {instance.title}", instance.id)


_OWNERS = (select(*_RECIPIENT).join(UserRole, UserRole.user_id == User.id)
           .join(Process, Process.owner_role == UserRole.role_key)
           .where(Process.key == bindparam("process_key"), User.active.is_(True)).distinct())


_HOLDERS = (select(*_RECIPIENT, Role.permissions).join(UserRole, UserRole.user_id == User.id)
            .join(Role, Role.key == UserRole.role_key).where(User.active.is_(True)))


def incident(session: Session, instance: Any, step: str, message: str) -> None:
    """A case stopped: tell the people of the process's owner role, who fix the cause and retry
    (the administrators when the process has no owner role)."""
    people = run(session, _OWNERS, {"process_key": instance.process_key}).all()
    if not people:
        admins = {row.id: row for row in run(session, _HOLDERS) if "administer" in (row.permissions or [])}
        people = list(admins.values())
    _add(session, people, "incident", f"Stopped at “{step}”: {message} — {instance.title}",
         instance_id=instance.id)


def request_finished(session: Session, instance: Any) -> None:
    starter = run(session, _USER, {"user_id": instance.started_by_id}).all()
    if starter:
        _add(session, starter, "request_finished", f"Your request “{instance.title}” is {instance.status}.",
             instance_id=instance.id)


def mentioned(session: Session, people: Iterable[User], author: User, instance: Any, text: str, *,
              task_id: int | None = None) -> None:
    """Tell the people a comment names (the caller checked that they may see the case)."""
    excerpt = text if len(text) <= 200 else text[:199] + "…"
    _add(session, people, "mentioned", f"{author.full_name} mentioned you on “{instance.title}”: {excerpt}",
         instance_id=instance.id, task_id=task_id)


def remind_due_tasks(session: Session) -> int:
    """Due-soon and overdue notices for open tasks, each sent once per task. Returns how many tasks."""
    now = utcnow()
    count = 0
    soon = select(HumanTask).where(HumanTask.status == TaskStatus.OPEN, HumanTask.due_at <= now + DUE_SOON,
                                   HumanTask.due_at > now, HumanTask.due_soon_notified.is_(False))
    for task in session.scalars(soon.limit(500)):
        task.due_soon_notified = True
        _add_for_task(session, task, "due_soon",
                      f"Due {task.due_at:%Y-%m-%d %H:%M} UTC: “{task.name}” — {task.instance.title}", task.instance_id)
        count += 1
    overdue = select(HumanTask).where(HumanTask.status == TaskStatus.OPEN, HumanTask.due_at <= now,
                                      HumanTask.overdue_notified.is_(False))
    for task in session.scalars(overdue.limit(500)):
        task.overdue_notified = task.due_soon_notified = True
        _add_for_task(session, task, "overdue",
                      f"Overdue since {task.due_at:%Y-%m-%d %H:%M} UTC: “{task.name}” — {task.instance.title}",
                      task.instance_id)
        count += 1
    session.flush()
    return count


# --- reading ---------------------------------------------------------------------------


def unread_count(session: Session, user: User) -> int:
    return session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def latest(session: Session, user: User, limit: int = 100) -> list[Notification]:
    return list(session.scalars(select(Notification).where(Notification.user_id == user.id)
                                .order_by(Notification.id.desc()).limit(limit)))


def mark_seen(session: Session, user: User, notes: Iterable[Notification]) -> set[int]:
    """``user`` has seen ``notes`` (the notifications page shows them): those unread become read.

    :returns: the ids of the ones that were unread, so that the page can still mark them as new
    """
    unread = {n.id for n in notes if n.read_at is None and n.user_id == user.id}
    if unread:
        session.execute(update(Notification).where(Notification.user_id == user.id, Notification.id.in_(unread),
                                                   Notification.read_at.is_(None)).values(read_at=utcnow()))
    return unread


def mark_all_read(session: Session, user: User) -> int:
    result = session.execute(update(Notification).where(Notification.user_id == user.id,
                                                        Notification.read_at.is_(None)).values(read_at=utcnow()))
    return result.rowcount


def set_email(session: Session, user: User, enabled: bool) -> None:
    """A user switches e-mail on or off; pending mails of someone who switched off are not sent."""
    user.email_notifications = enabled
    if not enabled:
        session.execute(update(Notification).where(Notification.user_id == user.id,
                                                   Notification.email_state == "pending").values(email_state="off"))
    session.flush()


# --- e-mail ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    sender: str = "deptflow@localhost"
    starttls: bool = False
    base_url: str = "http://127.0.0.1:5000"

    @classmethod
    def from_environment(cls) -> SmtpSettings | None:
        host = os.environ.get("DEPTFLOW_SMTP_HOST")
        if not host:
            return None
        return cls(
            host=host,
            port=int(os.environ.get("DEPTFLOW_SMTP_PORT", "25")),
            username=os.environ.get("DEPTFLOW_SMTP_USER") or None,
            password=os.environ.get("DEPTFLOW_SMTP_PASSWORD") or None,
            sender=os.environ.get("DEPTFLOW_SMTP_FROM", "deptflow@localhost"),
            starttls=os.environ.get("DEPTFLOW_SMTP_STARTTLS", "") == "1",
            base_url=os.environ.get("DEPTFLOW_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        )


def send_pending_email(session: Session, settings: SmtpSettings, limit: int = 50) -> tuple[int, int]:
    """Send due outbox mails; a failure is recorded and retried later with back-off.

    :returns: (sent, failed) in this pass
    """
    now = utcnow()
    rows = list(session.scalars(select(Notification).where(
        Notification.email_state == "pending", Notification.next_attempt_at <= now).order_by(Notification.id)
        .limit(limit)))
    if not rows:
        return 0, 0
    sent = failed = 0
    try:
        connection = _connect(settings)
    except (OSError, smtplib.SMTPException) as exc:
        for row in rows:
            _failed(row, exc, now)
        session.flush()
        return 0, len(rows)
    with connection:
        for row in rows:
            try:
                connection.send_message(_message(row, settings))
            except (OSError, smtplib.SMTPException) as exc:
                _failed(row, exc, now)
                failed += 1
            else:
                row.email_state, row.email_attempts, row.last_error = "sent", row.email_attempts + 1, None
                row.link = None  # a set-password token leaves the database once mailed
                sent += 1
    session.flush()
    return sent, failed


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    connection = smtplib.SMTP(settings.host, settings.port, timeout=10)
    if settings.starttls:
        connection.starttls()
    if settings.username:
        connection.login(settings.username, settings.password or "")
    return connection


def _failed(row: Notification, exc: Exception, now) -> None:
    row.email_attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:500]
    if row.email_attempts >= MAX_EMAIL_ATTEMPTS:
        row.email_state, row.link = "failed", None
    else:
        row.next_attempt_at = now + timedelta(minutes=2 ** row.email_attempts)


def _message(row: Notification, settings: SmtpSettings) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = row.user.email
    message["Subject"] = f"[deptflow] {row.message}"[:200]
    if row.link:
        message.set_content(f"Hello {row.user.full_name},\n\n{row.message}\n\n{settings.base_url}{row.link}\n\n"
                            "If you did not expect this e-mail, ignore it.\n")
        return message
    link = f"{settings.base_url}/tasks/{row.task_id}" if row.task_id else (
        f"{settings.base_url}/instances/{row.instance_id}" if row.instance_id else settings.base_url)
    message.set_content(f"Hello {row.user.full_name},\n\n{row.message}\n\n{link}\n\n"
                        "You can switch these e-mails off on your notifications page.\n")
    return message
