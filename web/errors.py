"""Engine errors and HTTP errors as pages (never a traceback)."""

from __future__ import annotations

from flask import Flask, current_app, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import DeptflowError

from .api import problems
from .database import db

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Already done",
    413: "Too large",
    422: "Cannot be processed",
    500: "Something went wrong",
}


def init_app(app: Flask) -> None:
    app.register_error_handler(DeptflowError, _engine_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def _page(status: int, message: str):
    db().rollback()
    return render_template("error.html", status=status, title=TITLES.get(status, "Error"), message=message), status


def _engine_error(exc: DeptflowError):
    if problems.wanted():
        return problems.from_engine(exc)
    return _page(exc.status, str(exc))


def _csrf_error(exc: CSRFError):
    if problems.wanted():
        return problems.problem(400, f"CSRF: {exc.description} Send the X-CSRFToken header with the login "
                                     "session, or use an API token.")
    return _page(400, "The form expired or was sent from elsewhere. Reload the page and try again.")


def _http_error(exc: HTTPException):
    if problems.wanted():
        return problems.from_http(exc)
    messages = {
        403: "You do not have a role that may open this page.",
        404: "There is no such page. It may have been moved, or the address was mistyped.",
    }
    return _page(exc.code or 500, messages.get(exc.code, exc.description or ""))


def _unexpected(exc: Exception):
    """Log the traceback for the operators; the user gets a page that says nothing was saved."""
    current_app.logger.exception("unhandled error")
    if problems.wanted():
        return problems.problem(500, "The request failed and nothing was saved.")
    return _page(500, "The request failed and nothing was saved. Please try again; if it keeps failing, "
                      "tell your administrator the time it happened.")
