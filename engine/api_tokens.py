"""API tokens: bearer credentials for ``/api/v1`` that act as their owner, within a scope.

A token is 32 random bytes (URL-safe base64, prefixed ``dft_``); only its SHA-256 is stored, so
it is shown once, when it is made. Its scope is a set of its owner's role keys: requests with the
token act as the owner holding only those roles (and only while the owner still holds them), so a
token can never do more than its owner. Tokens expire, and their owner (or an administrator)
revokes them. Every action taken with a token is the owner's in the audit log; making and
revoking a token are audited too.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload

from . import audit
from .clock import utcnow
from .db import ApiToken, Role, User, UserRole
from .errors import InvalidForm, NotAllowed, NotFound
from .permissions import can
from .sql import expire, run
from .vocabulary import EventKind, Permission

#: the prefix of every token, so that secret scanners and people recognise one
TOKEN_PREFIX = "dft_"
#: the longest life a token may be given
MAX_DAYS = 366
DEFAULT_DAYS = 30
#: the most live tokens one user may hold
MAX_TOKENS = 50
#: ``last_used_at`` is written at most this often per token (a busy client does not write on every call)
USE_RESOLUTION = timedelta(minutes=1)


class ScopedUser:
    """A user as one token sees them: the same person (id, name) with only the token's roles.

    Engine functions read ``id``, ``username``, ``full_name``, ``role_keys`` and ``permissions`` of
    their actor: those come with the token (:func:`authenticate` reads them in its one statement).
    Anything else (``email``, ``roles``, …) is the user's own, loaded from ``session`` when first asked.
    """

    def __init__(self, session: Session, user_id: int, username: str, full_name: str, role_keys: set[str],
                 permissions: set[str], token_id: int):
        self._session = session
        self._user: User | None = None
        self.id = user_id
        self.username = username
        self.full_name = full_name
        self.token_id = token_id
        self._role_keys = frozenset(role_keys)
        self._permissions = frozenset(permissions)

    @property
    def role_keys(self) -> set[str]:
        """The token's roles that the owner still holds and that are active."""
        return set(self._role_keys)

    @property
    def permissions(self) -> set[str]:
        return set(self._permissions)

    @property
    def roles(self) -> list[Role]:
        return [role for role in self._owner().roles if role.key in self._role_keys]

    def _owner(self) -> User:
        if self._user is None:
            self._user = self._session.get(User, self.id, options=[joinedload(User.roles)])
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe dunders: not the user's
            raise AttributeError(name)
        return getattr(self._owner(), name)

    def __repr__(self) -> str:
        return f"<ScopedUser {self.username} roles={sorted(self._role_keys)} token={self.token_id}>"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``secret`` is the only time the token is seen."""

    token: ApiToken
    secret: str


def create_token(session: Session, actor: User, name: str, roles: list[str] | None = None,
                 days: int | None = None) -> NewToken:
    """Make a token for ``actor``.

    :param roles: the scope, a subset of ``actor``'s roles; ``None`` or empty: all of them
    :param days: how long it lives, 1 to :data:`MAX_DAYS` (default :data:`DEFAULT_DAYS`)
    :raises InvalidForm: an empty name, a role ``actor`` does not hold, a life out of range, too many tokens
    """
    errors: dict[str, str] = {}
    label = (name or "").strip()
    if not label or len(label) > 100:
        errors["name"] = "Name the token (up to 100 characters), e.g. after the program that uses it."
    held = actor.role_keys
    wanted = set(roles or held)
    if not wanted <= held:
        errors["roles"] = f"Choose among your roles: {', '.join(sorted(held)) or 'none'}."
    life = DEFAULT_DAYS if days is None else days
    if not isinstance(life, int) or not 1 <= life <= MAX_DAYS:
        errors["days"] = f"A token lives 1 to {MAX_DAYS} days."
    if len(live_tokens(session, actor)) >= MAX_TOKENS:
        errors["name"] = f"You have {MAX_TOKENS} tokens; revoke one first."
    if errors:
        raise InvalidForm(errors, {"name": name, "roles": roles, "days": days})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(user_id=actor.id, name=label, token_hash=_digest(secret), prefix=secret[:10],
                     roles=sorted(wanted), created_at=now, expires_at=now + timedelta(days=life))
    session.add(token)
    session.flush()
    audit.record(session, EventKind.API_TOKEN_CREATED, actor=actor, token_id=token.id, name=label,
                 roles=token.roles, expires_at=token.expires_at.isoformat())
    return NewToken(token, secret)


def live_tokens(session: Session, actor: User) -> list[ApiToken]:
    """``actor``'s tokens that are neither revoked nor expired, newest first."""
    return list(session.scalars(
        select(ApiToken).where(ApiToken.user_id == actor.id, ApiToken.revoked_at.is_(None),
                               ApiToken.expires_at > utcnow())
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_token(session: Session, actor: User, token_id: int) -> ApiToken:
    """Revoke a token of ``actor`` (an administrator may revoke anyone's); it stops working at once.

    :raises NotFound: no such token, or it is another user's and ``actor`` does not administer
    """
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not can(actor, Permission.ADMINISTER)):
        raise NotFound(f"There is no token {token_id}.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, EventKind.API_TOKEN_REVOKED, actor=actor, token_id=token.id, name=token.name,
                     owner=token.user.username)
    return token


_tokens, _users, _roles = ApiToken.__table__, User.__table__, Role.__table__
_user_roles = UserRole.__table__
#: the token, its owner and the owner's roles (one row per role), in the one statement every API request
#: asks first; built once (no ORM objects, no compilation per request)
_AUTHENTICATE = (
    select(_tokens.c.id, _tokens.c.user_id, _tokens.c.roles.label("scope"), _tokens.c.expires_at,
           _tokens.c.revoked_at, _tokens.c.last_used_at, _users.c.username, _users.c.full_name,
           _users.c.active.label("user_active"), _roles.c.key.label("role_key"),
           _roles.c.permissions.label("role_permissions"), _roles.c.active.label("role_active"))
    .join(_users, _users.c.id == _tokens.c.user_id)
    .outerjoin(_user_roles, _user_roles.c.user_id == _users.c.id)
    .outerjoin(_roles, _roles.c.key == _user_roles.c.role_key)
    .where(_tokens.c.token_hash == bindparam("digest"))
)
_TOUCH = update(_tokens).where(_tokens.c.id == bindparam("token_id")).values(last_used_at=bindparam("now"))


def authenticate(session: Session, secret: str) -> tuple[ScopedUser, bool]:
    """The owner of a bearer token, with the token's scope; and whether the token's last use was written
    (at most every :data:`USE_RESOLUTION`: the caller commits only then, a read stays a read).

    :raises NotAllowed: unknown, revoked or expired token, or its owner is deactivated (one message for
        all: a caller learns nothing about which tokens exist)
    """
    refused = NotAllowed("The API token is not valid (unknown, expired or revoked).")
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        raise refused
    rows = run(session, _AUTHENTICATE, {"digest": _digest(secret)}).all()
    now = utcnow()
    if not rows:
        raise refused
    token = rows[0]
    if token.revoked_at is not None or token.expires_at <= now or not token.user_active:
        raise refused
    scope = set(token.scope or ())
    held = [row for row in rows if row.role_key in scope and row.role_active is not False]
    touched = token.last_used_at is None or now - token.last_used_at >= USE_RESOLUTION
    if touched:
        run(session, _TOUCH, {"token_id": token.id, "now": now})
        expire(session, ApiToken, token.id)
    actor = ScopedUser(session, token.user_id, token.username, token.full_name, {row.role_key for row in held},
                       {p for row in held for p in row.role_permissions or ()}, token.id)
    return actor, touched


def is_live(token: ApiToken, now: datetime | None = None) -> bool:
    """Neither revoked nor expired."""
    return token.revoked_at is None and token.expires_at > (now or utcnow())
