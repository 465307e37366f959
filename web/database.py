"""One database session per request, closed at teardown; one engine action per state change (:func:`act`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g
from flask_login import current_user
from sqlalchemy.orm import Session, configure_mappers

from engine.audit_signing import key_path
from engine.core import WorkflowEngine
from engine.db import make_engine
from engine.rows import retrying

T = TypeVar("T")


def init_app(app: Flask) -> None:
    configure_mappers()  # at start-up, not lazily under the first concurrent requests
    engine = make_engine(app.config["DATABASE_URL"])
    workflow_engine = app.config.get("WORKFLOW_ENGINE") or WorkflowEngine(
        audit_key=key_path(app.config["DATABASE_URL"]))
    app.extensions["deptflow_engine"] = engine
    app.extensions["deptflow_workflow_engine"] = workflow_engine
    app.extensions["deptflow_sessions"] = workflow_engine.session_factory(engine)
    app.teardown_appcontext(_close_session)


def db() -> Session:
    """The request's session (created on first use)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["deptflow_sessions"]()
    return g.db_session


def act(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one engine action for the logged-in user and commit it: the request's unit of work.

    When the case changed under the action, it is rolled back and run again; any error rolls back.
    """
    return act_as(current_user.user, action, *args, **kwargs)


def act_as(actor: Any, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`act` for a given actor (the API's: a token's owner within the token's scope)."""
    session = db()
    try:
        result = retrying(session, lambda: action(session, actor, *args, **kwargs))
        session.commit()
    except Exception:
        session.rollback()
        raise
    return result


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        if exc is not None:
            session.rollback()
        session.close()
