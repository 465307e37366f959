"""Users, roles and passwords (argon2)."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from . import audit
from .clock import utcnow
from .db import Event, Role, User
from .errors import InvalidForm, LoginLocked, NotFound
from .permissions import require
from .vocabulary import EventKind, Permission

_hasher = PasswordHasher()
# Spent on unknown usernames too, so that response time does not reveal which exist.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


LOCKOUT_ATTEMPTS = 5
LOCKOUT_WINDOW = timedelta(minutes=15)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None``. Logins and failures are audited.

    :raises LoginLocked: after five failures within fifteen minutes (counted since the last
        successful login); the account opens again when the oldest of them is fifteen minutes old
    """
    name = username.strip().lower()[:80]
    _check_lockout(session, name)
    user = session.scalar(select(User).where(User.username == name))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user_ok = False
    else:
        user_ok = user is not None and user.active
    if not user_ok:
        audit.record(session, EventKind.LOGIN_FAILED, username=name, known_user=user is not None)
        return None
    audit.record(session, EventKind.LOGIN, actor=user)
    return user


def _check_lockout(session: Session, name: str) -> None:
    now = utcnow()
    since = now - LOCKOUT_WINDOW
    user_id = session.scalar(select(User.id).where(User.username == name))
    if user_id is not None:
        last_login = session.scalar(select(func.max(Event.at)).where(
            Event.kind == EventKind.LOGIN, Event.actor_id == user_id, Event.at >= since))
        since = max(since, last_login) if last_login else since
    failures = list(session.scalars(select(Event.at).where(
        Event.kind == EventKind.LOGIN_FAILED, Event.at >= since, Event.data["username"].as_string() == name,
    ).order_by(Event.at)))
    if len(failures) >= LOCKOUT_ATTEMPTS:
        until = failures[-LOCKOUT_ATTEMPTS] + LOCKOUT_WINDOW
        audit.record(session, EventKind.LOGIN_LOCKED, username=name, until=until)
        raise LoginLocked(until)


def ensure_role(session: Session, key: str, name: str, description: str = "",
                permissions: list[str] | None = None) -> Role:
    role = session.get(Role, key)
    if role is None:
        role = Role(key=key, name=name, description=description)
        session.add(role)
    else:
        role.name, role.description = name, description
    role.permissions = sorted(permissions or [])
    return role


def ensure_user(
    session: Session, username: str, full_name: str, password: str, role_keys: list[str], email: str | None = None
) -> User:
    """Create the user, or update name and roles of an existing one (its password is kept)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, full_name=full_name, email=email, password_hash=hash_password(password))
        session.add(user)
    user.full_name = full_name
    user.email = email
    user.roles = [session.get(Role, key) for key in role_keys]
    return user


def get_user(session: Session, user_id: int) -> User | None:
    """The user with their roles, in one query (every request asks for both)."""
    return session.get(User, user_id, options=[joinedload(User.roles)])


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def all_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.full_name)))


def all_roles(session: Session) -> list[Role]:
    return list(session.scalars(select(Role).order_by(Role.name)))


def update_user(session: Session, actor: User, user_id: int, role_keys: list[str], active: bool) -> User:
    """An administrator sets a user's roles and whether they may log in; the change is audited."""
    require(actor, Permission.ADMINISTER, "Only administrators manage users.")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    roles = [session.get(Role, key) for key in sorted(set(role_keys))]
    if None in roles:
        raise InvalidForm({"roles": "Unknown role."}, {"roles": role_keys})
    keeps_admin = any(Permission.ADMINISTER in (role.permissions or []) for role in roles)
    if user.id == actor.id and (not keeps_admin or not active):
        raise InvalidForm({"roles": "You cannot remove your own administrator access."}, {"roles": role_keys})
    before = {"roles": sorted(user.role_keys), "active": user.active}
    user.roles, user.active = roles, active
    after = {"roles": sorted(user.role_keys), "active": user.active}
    if before != after:
        audit.record(session, EventKind.USER_CHANGED, actor=actor, user=user.username, before=before, after=after)
    session.flush()
    return user


SYSTEM_USERNAME = "deptflow-scheduler"


def system_user(session: Session) -> User:
    """The actor of scheduled starts (timer start events). It has no roles and cannot log in."""
    user = user_by_name(session, SYSTEM_USERNAME)
    if user is None:
        import secrets

        user = User(username=SYSTEM_USERNAME, full_name="deptflow scheduler", active=False,
                    email_notifications=False, password_hash=hash_password(secrets.token_hex(32)))
        session.add(user)
        session.flush()
    return user
