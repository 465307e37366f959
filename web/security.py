"""Login sessions, CSRF, role checks and security headers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Request, Response, abort, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_login import LoginManager, current_user, login_required, login_user
from flask_wtf.csrf import CSRFProtect

from engine import dashboard, notify, users
from engine.db import User
from engine.permissions import can
from engine.vocabulary import Permission

from .database import db


def bearer_request(req: Request) -> bool:
    """An API request that a bearer token authenticates (:mod:`web.api.auth`): it has no use for the cookie."""
    return req.path.startswith("/api/") and "Authorization" in req.headers


class _Unsaved(SecureCookieSession):
    """The session of a bearer request: empty, and never sent back as a cookie."""


class BearerlessSessions(SecureCookieSessionInterface):
    """Login sessions in a signed cookie, as Flask keeps them, except for bearer API requests: those neither
    read the cookie (no signature to check) nor ever set one."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if bearer_request(request):
            return _Unsaved()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        if not isinstance(session, _Unsaved):
            super().save_session(app, session, response)


class BearerExemptCSRFProtect(CSRFProtect):
    """CSRF protection for every request but the API's with an ``Authorization`` header: a browser never
    sends that header by itself, and such a request is authenticated by its token alone, never by the
    cookie (:mod:`web.api.auth`). Cookie-authenticated API requests are checked like every form."""

    def protect(self, *args: Any, **kwargs: Any) -> None:
        if bearer_request(request):
            return
        super().protect(*args, **kwargs)


login_manager = LoginManager()
csrf = BearerExemptCSRFProtect()
#: the user's ``session_generation`` when this browser logged in; raising it ends the session
GENERATION_KEY = "session_generation"


class LoginUser:
    """Flask-Login's view of an engine ``User``."""

    def __init__(self, user: User):
        self.user = user

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.user.id)


def init_app(app: Flask) -> None:
    app.session_interface = BearerlessSessions()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    app.after_request(_security_headers)

    @app.context_processor
    def _user_context() -> dict[str, Any]:
        if not current_user.is_authenticated:
            return {"me": None, "unread": 0, "can": lambda permission: False}
        me = actor()
        return {"me": me, "unread": notify.unread_count(db(), me), "can": lambda permission: can(me, permission),
                "may_see_dashboard": lambda: dashboard.may_see_dashboard(db(), me)}


def open_session(user: User) -> None:
    """Log ``user`` in on this browser, tied to their current session generation."""
    login_user(LoginUser(user))
    session[GENERATION_KEY] = user.session_generation


@login_manager.user_loader
def _load_user(user_id: str) -> LoginUser | None:
    """The session's user, unless deactivated or their sessions were ended since this one was opened
    (the cookie is signed, so only the server can change the generation it holds)."""
    user = users.get_user(db(), int(user_id)) if user_id.isdigit() and len(user_id) < 19 else None
    if user is None or not user.active or session.get(GENERATION_KEY) != user.session_generation:
        return None
    return LoginUser(user)


def actor() -> User:
    """The engine user behind the current request."""
    return current_user.user


def permission_required(permission: Permission) -> Callable:
    """Allow a view only to users whose roles grant ``permission`` (403 otherwise)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not can(actor(), permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    )
    return response
