"""People: administrators create users (with a password or a set-password link), edit their details and
roles, deactivate them; users set their password from a link.

A set-password link is single use and expires; only the SHA-256 of its token is stored. The link goes out
through the notification outbox (the worker mails it under the configured base URL) and leaves the outbox
once mailed or used. Deactivating a user ends their sessions and sends the tasks they hold back to their
roles' queues, each audited on its case.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import audit, directory, notify, users
from .clock import utcnow
from .db import HumanTask, Notification, PasswordToken, Role, User
from .errors import InvalidForm, NotFound
from .roles import PAGE_SIZE, Page, _require_admin, _user_matches, require_an_administrator
from .rows import assign_task, read_task
from .vocabulary import EventKind, Permission, TaskStatus

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,79}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: how long a set-password link works
LINK_LIFETIME = timedelta(hours=72)
SET_PASSWORD_PATH = "/account/set-password/"


def get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.username == users.SYSTEM_USERNAME:
        raise NotFound(f"There is no user {user_id}.")
    return user


def user_list(session: Session, query: str = "", page: int = 1, role: str | None = None,
              page_size: int = PAGE_SIZE) -> Page:
    """Users by name, filtered by username, name or e-mail (and role), a page at a time."""
    found = select(User).where(User.username != users.SYSTEM_USERNAME)
    if query.strip():
        found = found.where(_user_matches(query))
    if role:
        found = found.where(User.roles.any(Role.key == role))
    total = session.scalar(select(func.count()).select_from(found.subquery())) or 0
    rows = list(session.scalars(found.order_by(User.active.desc(), User.full_name, User.id)
                                .limit(page_size).offset((page - 1) * page_size)))
    return Page(rows, total, page, page_size)


def _check_details(username: str | None, full_name: str, email: str, errors: dict[str, str]) -> None:
    if username is not None and not USERNAME_PATTERN.match(username):
        errors["username"] = "Use 2–80 lower-case letters, digits, “.”, “_” or “-”."
    if not full_name:
        errors["full_name"] = "Give the person's full name."
    elif len(full_name) > 200:
        errors["full_name"] = "Use at most 200 characters."
    if email and (len(email) > 200 or not EMAIL_PATTERN.match(email)):
        errors["email"] = "This is not an e-mail address."


def _require_local_password(user: User) -> None:
    """A directory user's password is kept by the directory: deptflow neither sets it nor mails a link for it
    (a local password would replace the directory's mark, and their directory logins would be refused)."""
    if directory.is_directory_user(user):
        raise InvalidForm({"password": f"{user.full_name} signs in through the directory: the password is kept "
                                       "there, not by deptflow."}, {})


def _check_password(password: str, repeated: str | None, errors: dict[str, str], field: str = "password") -> None:
    if len(password) < users.MIN_PASSWORD_LENGTH:
        errors[field] = f"Use at least {users.MIN_PASSWORD_LENGTH} characters."
    elif len(password) > users.MAX_PASSWORD_LENGTH:
        errors[field] = f"Use at most {users.MAX_PASSWORD_LENGTH} characters."
    elif repeated is not None and repeated != password:
        errors["repeated"] = "The two passwords differ."


def _roles(session: Session, role_keys: list[str], errors: dict[str, str]) -> list[Role]:
    roles = [session.get(Role, key) for key in sorted(set(role_keys))]
    if any(role is None or not role.active for role in roles):
        errors["roles"] = "Unknown or deactivated role."
        return []
    return roles


@dataclass(frozen=True)
class NewUser:
    user: User
    #: the set-password link's token when one was made (the CLI may print the link)
    token: str | None = None


def create_user(session: Session, actor: User | None, username: str, full_name: str, email: str = "", *,
                role_keys: list[str] = (), password: str | None = None, repeated: str | None = None,
                send_link: bool = False) -> NewUser:
    """A new user with an initial password, or with a set-password link mailed to them.

    :raises InvalidForm: per field: a username taken or malformed, no full name, a bad e-mail address (or
        none when a link is to be sent), a password too short or not repeated, an unknown role
    """
    _require_admin(actor, "Only administrators create users.")
    username, full_name, email = username.strip().lower(), " ".join(full_name.split()), email.strip()
    values = {"username": username, "full_name": full_name, "email": email, "roles": list(role_keys),
              "send_link": send_link}
    errors: dict[str, str] = {}
    _check_details(username, full_name, email, errors)
    if "username" not in errors and users.user_by_name(session, username) is not None:
        errors["username"] = f"The username “{username}” is taken."
    if send_link:
        if not email:
            errors["email"] = "A set-password link needs an e-mail address."
    else:
        _check_password(password or "", repeated, errors)
    roles = _roles(session, list(role_keys), errors)
    if errors:
        raise InvalidForm(errors, values)
    user = User(username=username, full_name=full_name, email=email or None, active=True,
                password_hash=users.hash_password(password if not send_link else secrets.token_hex(32)))
    user.roles = roles
    session.add(user)
    session.flush()
    audit.record(session, EventKind.USER_CREATED, actor=actor, user=username, full_name=full_name,
                 email=email or None, roles=[r.key for r in roles], password="link" if send_link else "set")
    token = _send_link(session, actor, user) if send_link else None
    return NewUser(user, token)


def update_details(session: Session, actor: User | None, user_id: int, full_name: str, email: str) -> User:
    """An administrator corrects a user's full name and e-mail address (the username stays)."""
    _require_admin(actor, "Only administrators manage users.")
    user = get(session, user_id)
    full_name, email = " ".join(full_name.split()), email.strip()
    errors: dict[str, str] = {}
    _check_details(None, full_name, email, errors)
    if errors:
        raise InvalidForm(errors, {"full_name": full_name, "email": email})
    before = {"full_name": user.full_name, "email": user.email}
    user.full_name, user.email = full_name, email or None
    after = {"full_name": user.full_name, "email": user.email}
    if before != after:
        audit.record(session, EventKind.USER_CHANGED, actor=actor, user=user.username, before=before, after=after)
    session.flush()
    return user


def update_access(session: Session, actor: User | None, user_id: int, role_keys: list[str], active: bool) -> User:
    """Set a user's roles and whether they may log in. Deactivation ends their sessions and returns the
    tasks they hold to their roles' queues.

    :raises InvalidForm: an unknown role; deactivating yourself or removing your own administrator access;
        leaving nobody who may administer
    """
    _require_admin(actor, "Only administrators manage users.")
    user = get(session, user_id)
    values = {"roles": list(role_keys), "active": active}
    errors: dict[str, str] = {}
    # a deactivated role the user holds stays theirs unless the form drops it (the form lists active roles only)
    roles = _roles(session, [k for k in role_keys if k not in _inactive_keys(user)], errors)
    roles += [r for r in user.roles if not r.active and r.key in role_keys]
    if actor is not None and user.id == actor.id:
        if not active:
            errors["active"] = "You cannot deactivate yourself."
        elif not any(Permission.ADMINISTER in (r.permissions or []) for r in roles if r.active):
            errors["roles"] = "You cannot remove your own administrator access."
    if errors:
        raise InvalidForm(errors, values)
    before = {"roles": sorted(r.key for r in user.roles), "active": user.active}
    user.roles, user.active = sorted(roles, key=lambda r: r.key), active
    after = {"roles": sorted(r.key for r in user.roles), "active": user.active}
    require_an_administrator(session, "active" if not active else "roles", values)
    if before != after:
        audit.record(session, EventKind.USER_CHANGED, actor=actor, user=user.username, before=before, after=after)
    if before["active"] and not active:
        users.end_sessions(session, user, "deactivated", actor=actor)
        return_tasks(session, actor, user)
    session.flush()
    return user


def _inactive_keys(user: User) -> set[str]:
    return {r.key for r in user.roles if not r.active}


def deactivate(session: Session, actor: User | None, user_id: int) -> User:
    """Deactivate a user and keep their roles (the CLI's ``deptflow user deactivate``)."""
    user = get(session, user_id)
    return update_access(session, actor, user_id, [r.key for r in user.roles], False)


def return_tasks(session: Session, actor: User | None, user: User) -> list[int]:
    """Send every open task ``user`` holds back to its roles' queue, one audit event per task on its case;
    the roles' people are told there is work.

    :returns: the ids of the tasks returned
    """
    ids = list(session.scalars(select(HumanTask.id).where(HumanTask.assignee_id == user.id,
                                                          HumanTask.status == TaskStatus.OPEN)
                               .order_by(HumanTask.id)))
    returned = []
    for task_id in ids:
        task = read_task(session, task_id)
        if task.assignee_id != user.id or not assign_task(session, task, None, None):
            continue
        audit.record(session, EventKind.TASK_RETURNED, instance=task.instance, actor=actor, task=task,
                     user=user.username, reason="deactivated")
        notify.task_created(session, task, task.instance)
        returned.append(task_id)
    return returned


# --- passwords -----------------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _send_link(session: Session, actor: User | None, user: User) -> str:
    now = utcnow()
    session.execute(update(PasswordToken).where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None),
                                                PasswordToken.expires_at > now).values(expires_at=now))
    _forget_links(session, user.id)
    token = secrets.token_urlsafe(32)
    expires = now + LINK_LIFETIME
    session.add(PasswordToken(user_id=user.id, token_hash=_digest(token), created_at=now, expires_at=expires,
                              created_by_id=actor.id if actor is not None else None))
    session.add(Notification(
        user_id=user.id, kind="set_password", created_at=now, next_attempt_at=now, link=SET_PASSWORD_PATH + token,
        message=f"Set your deptflow password (username {user.username}); the link works once, until "
                f"{expires:%Y-%m-%d %H:%M} UTC.",
        email_state="pending" if user.email else "off"))
    session.flush()
    audit.record(session, EventKind.PASSWORD_LINK_SENT, actor=actor, user=user.username, expires_at=expires)
    return token


def send_password_link(session: Session, actor: User | None, user_id: int) -> str:
    """Mail a user a new set-password link (earlier unused links stop working).

    :raises InvalidForm: the user has no e-mail address, is deactivated, or signs in through the directory
    """
    _require_admin(actor, "Only administrators send set-password links.")
    user = get(session, user_id)
    _require_local_password(user)
    if not user.email:
        raise InvalidForm({"email": "A set-password link needs an e-mail address."}, {})
    if not user.active:
        raise InvalidForm({"active": "The user is deactivated; reactivate them first."}, {})
    return _send_link(session, actor, user)


def _forget_links(session: Session, user_id: int) -> None:
    """Links not yet mailed leave the outbox (a mailed one is cleared by the worker)."""
    session.execute(update(Notification).where(Notification.user_id == user_id, Notification.kind == "set_password",
                                               Notification.link.is_not(None))
                    .values(link=None, email_state="off"))


def _valid_token(session: Session, token: str) -> tuple[PasswordToken, User]:
    row = session.scalar(select(PasswordToken).where(PasswordToken.token_hash == _digest(token[:200])))
    message = None
    if row is None:
        message = "This link is not valid. Ask your administrator for a new one."
    elif row.used_at is not None:
        message = "This link was used already. Ask your administrator for a new one."
    elif row.expires_at <= utcnow():
        message = (f"This link expired at {row.expires_at:%Y-%m-%d %H:%M} UTC. "
                   "Ask your administrator for a new one.")
    user = session.get(User, row.user_id) if row is not None else None
    if message is None and (user is None or not user.active):
        message = "This account is deactivated."
    if message is not None:
        raise InvalidForm({"token": message}, {})
    return row, user


def check_link(session: Session, token: str) -> User:
    """The user a set-password link is for. :raises InvalidForm: (field ``token``) unknown, used or expired"""
    return _valid_token(session, token)[1]


def set_password_from_link(session: Session, token: str, new: str, repeated: str) -> User:
    """The user sets their password from a link; the link stops working and every session of theirs ends.

    :raises InvalidForm: per field: ``token`` unknown, used or expired; ``new`` too short or too long;
        ``repeated`` differs
    """
    row, user = _valid_token(session, token)
    errors: dict[str, str] = {}
    _check_password(new, repeated, errors, field="new")
    if errors:
        raise InvalidForm(errors, {})
    row.used_at = utcnow()
    user.password_hash = users.hash_password(new)
    _forget_links(session, user.id)
    audit.record(session, EventKind.PASSWORD_SET, actor=user, user=user.username, via="link")
    users.end_sessions(session, user, "password_changed")
    return user


def set_password(session: Session, actor: User | None, user_id: int, new: str) -> User:
    """An operator sets a user's password (``deptflow user set-password``); their sessions end.

    :raises InvalidForm: the password is too short or too long, or the user signs in through the directory
    """
    _require_admin(actor, "Only administrators set other people's passwords.")
    user = get(session, user_id)
    _require_local_password(user)
    errors: dict[str, str] = {}
    _check_password(new, None, errors)
    if errors:
        raise InvalidForm(errors, {})
    user.password_hash = users.hash_password(new)
    audit.record(session, EventKind.PASSWORD_SET, actor=actor, user=user.username, via="administrator")
    users.end_sessions(session, user, "password_changed", actor=actor)
    return user


def links_of(session: Session, user_id: int) -> list[PasswordToken]:
    """The user's set-password links, newest first (for the user page: sent, used, expired)."""
    return list(session.scalars(select(PasswordToken).where(PasswordToken.user_id == user_id)
                                .order_by(PasswordToken.id.desc()).limit(10)))


def link_state(token: PasswordToken, now: datetime | None = None) -> str:
    if token.used_at is not None:
        return "used"
    return "expired" if token.expires_at <= (now or utcnow()) else "waiting"

