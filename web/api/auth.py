"""Who calls the API: a bearer token (``Authorization: Bearer dft_…``) or the browser's login session.

A request with an ``Authorization`` header is authenticated by it alone (an invalid token is a 401,
never a fall-back to the cookie); such requests are the only ones exempt from CSRF (see
:class:`web.security.CsrfProtect`): a browser never adds the header by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import g, request
from flask_login import current_user

from engine import api_tokens
from engine.db import User
from engine.errors import NotAllowed

from ..database import act_as, db
from .problems import Unauthenticated

T = TypeVar("T")


def authenticate() -> None:
    """Before every API request but the document and the health checks: set the request's actor."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("Send the token as: Authorization: Bearer <token>.")
        session = db()
        try:
            g.api_actor, touched = api_tokens.authenticate(session, secret.strip())
        except NotAllowed as exc:
            raise Unauthenticated(str(exc)) from exc
        if touched:
            session.commit()  # the token's last use, whatever the request does next
        return
    if current_user.is_authenticated:
        g.api_actor = current_user.user
        return
    raise Unauthenticated("Log in, or send an API token: Authorization: Bearer <token>.")


def actor() -> User:
    """The user behind the API request (with a token: the owner, holding the token's roles only)."""
    return g.api_actor


def act(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`web.database.act` for the API's actor: one engine action, committed, retried on a changed case."""
    return act_as(actor(), action, *args, **kwargs)
