"""Directory logins in the browser: the settings for the app, and OpenID Connect's redirect flow.

The flow is the authorization code with PKCE (S256) and a nonce, through Authlib: ``/login/sso``
sends the browser to the provider, ``/login/sso/callback`` takes the code back, exchanges it (with
the code verifier) for tokens, checks the ID token's signature, issuer, audience and nonce, and
hands its claims to :func:`engine.directory.login_with_claims`. LDAP needs no route of its own: the
login form asks it (:func:`engine.directory.authenticate`).
"""

from __future__ import annotations

from typing import Any

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, abort, current_app, flash, redirect, request, session, url_for

from engine import directory
from engine.directory import DirectorySettings

from .auth import _safe_next
from .database import db
from .security import open_session

bp = Blueprint("sso", __name__)
_NEXT = "sso_next"


def init_app(app: Flask) -> None:
    """Read the directory settings (test config ``DIRECTORY``, else the environment) and register the client."""
    try:
        settings = app.config.get("DIRECTORY") or directory.settings_from_environ()
    except (directory.DirectoryMisconfigured, ValueError) as exc:
        raise RuntimeError(f"Directory login is misconfigured: {exc}") from exc
    app.extensions["deptflow_directory"] = settings
    if settings.oidc is not None:
        oauth = OAuth(app)
        oauth.register(
            "oidc", client_id=settings.oidc.client_id, client_secret=settings.oidc.client_secret,
            server_metadata_url=settings.oidc.metadata_url,
            client_kwargs={"scope": settings.oidc.scope, "code_challenge_method": "S256",
                           "default_timeout": settings.oidc.timeout})
        app.extensions["deptflow_oidc"] = oauth.create_client("oidc")
    app.context_processor(lambda: {"sso_label": settings.oidc.label if settings.oidc else None})


def settings() -> DirectorySettings:
    return current_app.extensions["deptflow_directory"]


def _client() -> Any:
    client = current_app.extensions.get("deptflow_oidc")
    if client is None:
        abort(404)
    return client


def _unreachable():
    flash(f"The sign-in provider {settings().oidc.label} is unreachable right now. Local accounts can still "
          "log in here.", "error")
    return redirect(url_for("auth.login"))


@bp.route("/login/sso")
def start():
    """Send the browser to the OpenID provider; where to go after the login waits in the session."""
    client = _client()
    session[_NEXT] = _safe_next(request.args.get("next"))
    try:
        return client.authorize_redirect(url_for("sso.callback", _external=True))
    except (requests.RequestException, ValueError) as exc:
        current_app.logger.warning("OpenID provider unreachable: %s", exc)
        return _unreachable()


@bp.route("/login/sso/callback")
def callback():
    """Take the provider's answer: tokens for the code, the checked ID token's claims → a logged-in user."""
    client = _client()
    try:
        token = client.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims:
            raise ValueError("the provider sent no ID token")
        groups_claim = settings().oidc.groups_claim
        if groups_claim not in claims and client.load_server_metadata().get("userinfo_endpoint"):
            info = client.userinfo(token=token)
            if info.get("sub") == claims.get("sub") and groups_claim in info:
                claims[groups_claim] = info[groups_claim]
    except requests.RequestException as exc:
        current_app.logger.warning("OpenID provider unreachable: %s", exc)
        return _unreachable()
    except (AuthlibBaseError, ValueError, KeyError) as exc:
        directory.record_failure(db(), "oidc", str(exc) or type(exc).__name__, request.remote_addr)
        db().commit()
        flash(f"{settings().oidc.label} did not confirm who you are. Try again.", "error")
        return redirect(url_for("auth.login"))
    user = directory.login_with_claims(db(), settings(), claims, request.remote_addr)
    db().commit()
    if user is None:
        flash("This account cannot log in here. Ask your administrator.", "error")
        return redirect(url_for("auth.login"))
    open_session(user)
    return redirect(session.pop(_NEXT, None) or url_for("inbox.index"))
