"""Users, roles and passwords (argon2)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .db import Role, User

_hasher = PasswordHasher()
# Spent on unknown usernames too, so that response time does not reveal which exist.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or ``None`` (a failed login is audited)."""
    name = username.strip().lower()
    user = session.scalar(select(User).where(User.username == name))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user_ok = False
    else:
        user_ok = user is not None and user.active
    if not user_ok:
        audit.record(session, "login_failed", username=name[:80], known_user=user is not None)
        return None
    return user


def ensure_role(session: Session, key: str, name: str, description: str = "") -> Role:
    role = session.get(Role, key)
    if role is None:
        role = Role(key=key, name=name, description=description)
        session.add(role)
    else:
        role.name, role.description = name, description
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
    return session.get(User, user_id)


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))
