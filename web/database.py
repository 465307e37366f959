"""One database session per request, closed at teardown."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, configure_mappers

from engine.db import make_engine, make_session_factory


def init_app(app: Flask) -> None:
    configure_mappers()  # at start-up, not lazily under the first concurrent requests
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["deptflow_engine"] = engine
    app.extensions["deptflow_sessions"] = make_session_factory(engine)
    app.teardown_appcontext(_close_session)


def db() -> Session:
    """The request's session (created on first use)."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["deptflow_sessions"]()
    return g.db_session


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        if exc is not None:
            session.rollback()
        session.close()
