"""Users, roles and passwords (argon2)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, joinedload

from . import audit
from .clock import utcnow
from .db import Event, Role, User
from .errors import InvalidForm, LoginLocked
from .permissions import require
from .vocabulary import EventKind, Permission

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified for unknown usernames too, so that response time does not reveal which exist (made at the
    first login, not at import: every command would pay for it)."""
    return _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


#: failures from one address at one account that cost nothing; each further one doubles the wait
FREE_FAILURES = 3
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
#: how long a failure counts against its (account, address) pair, unless a login from there succeeds
PAIR_WINDOW = timedelta(hours=24)
#: failures from one address across all accounts within ``ADDRESS_WINDOW`` that close the address
ADDRESS_CEILING = 50
ADDRESS_WINDOW = timedelta(hours=1)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024


def authenticate(session: Session, username: str, password: str, address: str | None = None) -> User | None:
    """The active user with these credentials, or ``None``. Logins, failures and limits are audited.

    Failures are counted per (username, client address) in the shared event log, so every web
    worker sees the same counts and failures from other addresses never hold up the real user.

    :param address: the client's IP address (``request.remote_addr``); recorded with the event
    :raises LoginLocked: this address must wait before trying this username again (the wait doubles
        with each failure after the first three, up to fifteen minutes), or this address failed
        ``ADDRESS_CEILING`` times within an hour, whatever the usernames
    """
    name = username.strip().lower()[:80]
    address = (address or "unknown")[:64]
    user = session.scalar(select(User).where(User.username == name))
    _check_limits(session, name, address, user)
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        user_ok = False
    else:
        user_ok = user is not None and user.active
    if not user_ok:
        audit.record(session, EventKind.LOGIN_FAILED, username=name, known_user=user is not None, address=address,
                     method="password")
        return None
    audit.record(session, EventKind.LOGIN, actor=user, address=address, method="password")
    return user


@dataclass(frozen=True)
class LoginLimit:
    """A limit in force: on one username from one address, or (``username`` None) on the address."""

    username: str | None
    address: str
    failures: int
    until: datetime


def _address_is(address: str):
    return Event.data["address"].as_string() == address


def _last_lift(session: Session, address: str, name: str | None, since: datetime) -> datetime:
    """The later of ``since`` and the last time an administrator lifted this limit."""
    lifted = and_(_address_is(address), Event.data["username"].as_string().is_(None)) if name is None else and_(
        _address_is(address), Event.data["username"].as_string() == name)
    last = session.scalar(select(func.max(Event.at)).where(
        Event.kind == EventKind.LOGIN_LIMIT_LIFTED, Event.at >= since, lifted))
    return max(since, last) if last else since


def pair_delay(failures: int) -> timedelta:
    """How long an address waits after its ``failures``-th failure at one username."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(FIRST_DELAY * 2 ** min(failures - FREE_FAILURES, 20), MAX_DELAY)


def _pair_limit(session: Session, name: str, address: str, user: User | None, now: datetime) -> LoginLimit | None:
    since = _last_lift(session, address, name, now - PAIR_WINDOW)
    if user is not None:
        last_login = session.scalar(select(func.max(Event.at)).where(
            Event.kind == EventKind.LOGIN, Event.actor_id == user.id, Event.at >= since, _address_is(address)))
        since = max(since, last_login) if last_login else since
    failures = list(session.scalars(select(Event.at).where(
        Event.kind == EventKind.LOGIN_FAILED, Event.at >= since, Event.data["username"].as_string() == name,
        _address_is(address)).order_by(Event.at)))
    until = failures[-1] + pair_delay(len(failures)) if failures else now
    return LoginLimit(name, address, len(failures), until) if until > now else None


def _address_limit(session: Session, address: str, now: datetime) -> LoginLimit | None:
    since = _last_lift(session, address, None, now - ADDRESS_WINDOW)
    failures = list(session.scalars(select(Event.at).where(
        Event.kind == EventKind.LOGIN_FAILED, Event.at >= since, _address_is(address))
        .order_by(Event.at.desc()).limit(ADDRESS_CEILING)))
    if len(failures) < ADDRESS_CEILING:
        return None
    until = failures[-1] + ADDRESS_WINDOW  # when the oldest of the last ``ADDRESS_CEILING`` stops counting
    return LoginLimit(None, address, len(failures), until) if until > now else None


def _check_limits(session: Session, name: str, address: str, user: User | None) -> None:
    now = utcnow()
    limit = _address_limit(session, address, now) or _pair_limit(session, name, address, user, now)
    if limit is None:
        return
    # one audit event per limit, not one per refused attempt: a script hammering away cannot flood the log
    already = session.scalar(select(func.count()).select_from(Event).where(
        Event.kind == EventKind.LOGIN_LOCKED, Event.at >= now - MAX_DELAY - ADDRESS_WINDOW, _address_is(address),
        Event.data["until"].as_string() == limit.until.isoformat()))
    if not already:
        audit.record(session, EventKind.LOGIN_LOCKED, username=name, address=address, until=limit.until,
                     scope="address" if limit.username is None else "account")
    raise LoginLocked(limit.until)


def check_login_limits(session: Session, username: str, address: str, user: User | None = None) -> None:
    """The limits of :func:`authenticate` for a login checked elsewhere (a directory).

    :raises LoginLocked: as :func:`authenticate`
    """
    _check_limits(session, username, address, user)


def login_limits(session: Session) -> list[LoginLimit]:
    """Every limit in force now, for the administrators' page (the longest first)."""
    now = utcnow()
    username, address = Event.data["username"].as_string(), Event.data["address"].as_string()
    failed = (Event.kind == EventKind.LOGIN_FAILED,)
    busy_addresses = session.scalars(select(address).where(*failed, Event.at >= now - ADDRESS_WINDOW)
                                     .group_by(address).having(func.count() >= ADDRESS_CEILING))
    limits = [_address_limit(session, a, now) for a in busy_addresses if a]
    pairs = session.execute(select(username, address).where(*failed, Event.at >= now - PAIR_WINDOW)
                            .group_by(username, address).having(func.count() >= FREE_FAILURES))
    limits += [_pair_limit(session, n, a, user_by_name(session, n), now) for n, a in pairs if n and a]
    return sorted((limit for limit in limits if limit is not None), key=lambda limit: limit.until, reverse=True)


def lift_login_limit(session: Session, actor: User, address: str, username: str | None = None) -> None:
    """An administrator lets ``address`` try again: at ``username``, or (``None``) at every account.

    The failures stay in the audit log; only those before the lift stop counting.
    """
    require(actor, Permission.ADMINISTER, "Only administrators lift login limits.")
    if not address.strip():
        raise InvalidForm({"address": "Name the address."}, {"address": address})
    audit.record(session, EventKind.LOGIN_LIMIT_LIFTED, actor=actor, address=address.strip(),
                 username=username.strip().lower() if username else None)
    session.flush()


def end_sessions(session: Session, user: User, reason: str, actor: User | None = None) -> None:
    """End every login session of ``user`` (every browser, every worker): their generation no longer matches.

    :param reason: ``logout``, ``password_changed`` or ``deactivated``, kept in the audit event
    """
    user.session_generation = (user.session_generation or 0) + 1
    audit.record(session, EventKind.SESSIONS_ENDED, actor=actor or user, user=user.username, reason=reason)
    session.flush()


def change_password(session: Session, actor: User, current: str, new: str, repeated: str) -> User:
    """The logged-in user sets a new password; every session of theirs ends (the caller opens a new one).

    :raises InvalidForm: per field: the current password is wrong, the new one is too short or
        too long, the same as the current one, or not repeated exactly; a directory user has no local password
    """
    if actor.password_hash.startswith("!"):  # a directory user (engine.directory): no local password to change
        raise InvalidForm({"current": "Your password is managed by the directory, not by deptflow."}, {})
    errors: dict[str, str] = {}
    try:
        _hasher.verify(actor.password_hash, current[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        errors["current"] = "This is not your current password."
    if len(new) < MIN_PASSWORD_LENGTH:
        errors["new"] = f"Use at least {MIN_PASSWORD_LENGTH} characters."
    elif len(new) > MAX_PASSWORD_LENGTH:
        errors["new"] = f"Use at most {MAX_PASSWORD_LENGTH} characters."
    elif new == current and "current" not in errors:
        errors["new"] = "Choose a password other than your current one."
    if "new" not in errors and repeated != new:
        errors["repeated"] = "The two new passwords differ."
    if errors:
        raise InvalidForm(errors, {})
    actor.password_hash = hash_password(new)
    audit.record(session, EventKind.PASSWORD_CHANGED, actor=actor)
    end_sessions(session, actor, "password_changed")
    return actor


def ensure_role(session: Session, key: str, name: str, description: str = "",
                permissions: list[str] | None = None, manager_role: str | None = None) -> Role:
    """Create the role, or set name, description, permissions and managing role of an existing one."""
    role = session.get(Role, key)
    if role is None:
        role = Role(key=key, name=name, description=description, active=True)
        session.add(role)
    else:
        role.name, role.description = name, description
    role.permissions = sorted(permissions or [])
    role.manager_role = manager_role
    return role


def ensure_user(
    session: Session, username: str, full_name: str, password: str | None, role_keys: list[str],
    email: str | None = None, *, password_hash: str | None = None,
) -> User:
    """Create the user, or update name and roles of an existing one (its password is kept). A new user's
    password is ``password``, or ``password_hash`` when it was hashed already."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, full_name=full_name, email=email,
                    password_hash=password_hash or hash_password(password or ""))
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
    """An administrator sets a user's roles and whether they may log in: :func:`engine.people.update_access`."""
    from . import people  # people builds on this module

    return people.update_access(session, actor, user_id, role_keys, active)


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
