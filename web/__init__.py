"""The Flask front end: app factory, extensions, blueprints."""

from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask

from engine.clock import utcnow
from engine.db import database_url
from engine.definitions import known_roles

from . import database, errors, security


def _role_names():
    """Display names of roles for templates (``role_name(key)``), read once per request."""
    names: dict[str, str] | None = None

    def lookup(key: str) -> str:
        nonlocal names
        if names is None:
            names = known_roles(database.db())
        return names.get(key, key)

    return lookup


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, environment, test overrides, one ``init_app`` per resource, blueprints."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("DEPTFLOW_SECRET_KEY") or secrets.token_hex(32),
        DATABASE_URL=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=4 * 1024 * 1024,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if config:
        app.config.update(config)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or database_url()

    database.init_app(app)
    security.init_app(app)
    errors.init_app(app)

    from . import auth, inbox, processes, reports

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(processes.bp)
    app.register_blueprint(reports.bp)
    app.context_processor(lambda: {"now": utcnow(), "role_name": _role_names()})
    return app
