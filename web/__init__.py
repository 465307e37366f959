"""The Flask front end: app factory, extensions, blueprints."""

from __future__ import annotations

import gc
import os
import re
import secrets
from datetime import date, timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.clock import utcnow
from engine.db import database_url
from engine.definitions import known_roles
from engine.files import Settings as FileSettings
from engine.task_filters import HIGH_PRIORITY, LOW_PRIORITY

from . import database, errors, security, sso
from .params import BoundedIntConverter


def _role_names():
    """Display names of roles for templates (``role_name(key)``), read once per request."""
    names: dict[str, str] | None = None

    def lookup(key: str) -> str:
        nonlocal names
        if names is None:
            names = known_roles(database.db())
        return names.get(key, key)

    return lookup


def _duration(delta: timedelta) -> str:
    """A time span as people say it: "2 d 3 h", "4 min", "12 s"."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


def _choice(value: Any, options: dict[str, Any] | None) -> Any:
    """The label of an enum value (``options`` maps ids to labels); a list or dict in case data is no id."""
    try:
        return (options or {}).get(value, value)
    except TypeError:  # unhashable: a list or a nested dict
        return value


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _priority(value: int | None) -> str:
    """A task's priority as a word (the inbox filter's words); the number stays in a tooltip (``title``)."""
    if value is None:
        return "Normal"
    return "High" if value >= HIGH_PRIORITY else "Low" if value <= LOW_PRIORITY else "Normal"


def _fits_input(value: Any, kind: str) -> bool:
    """Whether a browser keeps ``value`` in an ``<input type=kind>`` (number, date). Browsers blank what they
    cannot parse ("nine hundred k", "2026-02-30", even "900,000"), which would hide a refused value: such a
    field is rendered as text instead."""
    if value is None or value == "" or (kind == "number" and isinstance(value, (int, float))
                                        and not isinstance(value, bool)):
        return True
    text = str(value)
    if kind == "number":
        return _NUMBER.fullmatch(text) is not None
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: defaults, environment, test overrides, one ``init_app`` per resource, blueprints."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("DEPTFLOW_SECRET_KEY"),
        DATABASE_URL=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # a form's files may be as large as configured (DEPTFLOW_ATTACHMENT_MAX_MB), with the rest of the form
        MAX_CONTENT_LENGTH=max(4 * 1024 * 1024, FileSettings.from_environment().max_bytes + 1024 * 1024),
        WTF_CSRF_TIME_LIMIT=None,
    )
    if config:
        app.config.update(config)
    if not app.config["SECRET_KEY"]:
        if not (app.testing or os.environ.get("DEPTFLOW_DEMO") == "1"):
            raise RuntimeError("DEPTFLOW_SECRET_KEY is not set. It signs login sessions: set it to a long random "
                               "value (python3 -c 'import secrets; print(secrets.token_hex(32))'), or run the demo "
                               "with `deptflow serve --demo`.")
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    if os.environ.get("DEPTFLOW_HTTPS") == "1":  # behind a TLS-terminating proxy
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True, PREFERRED_URL_SCHEME="https")
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    app.config["DATABASE_URL"] = app.config["DATABASE_URL"] or database_url()
    app.url_map.converters["int"] = BoundedIntConverter  # before any route: ids beyond 2^63 are a 404

    database.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    sso.init_app(app)  # directory logins: LDAP and OpenID Connect, when configured

    from . import (
        account,
        admin,
        api,
        auth,
        dashboard,
        discussion,
        history,
        inbox,
        mappings,
        modeler,
        notifications,
        processes,
        reports,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(sso.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(processes.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(history.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(mappings.groups_bp)
    app.register_blueprint(mappings.delegates_bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(modeler.bp)
    app.register_blueprint(discussion.bp)
    api.init_app(app)
    app.add_template_filter(_duration, "duration")
    app.add_template_filter(_choice, "choice")
    app.add_template_filter(_priority, "priority")
    app.add_template_test(_fits_input, "fitting")
    app.context_processor(lambda: {"now": utcnow(), "role_name": _role_names()})
    if not app.testing:
        settle_heap()
    return app


def settle_heap() -> None:
    """Moves what start-up made (modules, the app, about 170,000 objects) out of the garbage collector's full
    passes, which otherwise walk all of it: such a pass took 50–100 ms of the request that triggered it (the
    dashboard's tail latency, measured). Called once the app is built; the tests, which build many apps, keep
    the ordinary collector."""
    gc.freeze()
