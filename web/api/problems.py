"""Errors of the API as ``application/problem+json`` (RFC 9457): the one shape of every error under
``/api/`` and of the health checks, whatever raised it (an engine error, routing, webargs, CSRF)."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from engine.errors import DeptflowError, InvalidDefinition, InvalidForm, NotBpmn, Problem

from ..database import db

MEDIA_TYPE = "application/problem+json"
PREFIXES = ("/api/",)
HEALTH = ("/healthz", "/readyz")


class Unauthenticated(DeptflowError):
    """No credentials, or credentials that are not valid: the client must authenticate (401)."""

    status = 401


def wanted() -> bool:
    """Whether the current request is one of the API's (its errors are problems, not pages)."""
    return request.path.startswith(PREFIXES) or request.path in HEALTH


def problem(status: int, detail: str, *, errors: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, **members: Any) -> Response:
    """A problem document; the request's transaction is rolled back (nothing it did is kept).

    :param members: extension members (RFC 9457 §3.2), e.g. a diagram's ``problems``
    """
    db().rollback()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update(members)
    response = current_app.response_class(json.dumps(body, ensure_ascii=False), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="deptflow"'
    return response


def from_engine(exc: DeptflowError) -> Response:
    if isinstance(exc, InvalidForm):
        return problem(exc.status, "Some values are not valid; see errors.",
                       errors={name: str(message) for name, message in exc.errors.items()})
    if isinstance(exc, InvalidDefinition):
        return _diagram_problem(exc)
    return problem(exc.status, str(exc))


def bpmn_problems(problems: list[Problem]) -> list[dict[str, Any]]:
    """A diagram's problems as the API writes them (element ids, severity, kind, group or Java delegate to map)."""
    return [{"message": p.message, "element_id": p.element_id, "severity": p.severity, "kind": p.kind,
             "group": p.group, "delegate": p.delegate} for p in problems]


def _diagram_problem(exc: InvalidDefinition) -> Response:
    from engine.modeling import WarningsNotAcknowledged

    if isinstance(exc, NotBpmn):
        detail = "; ".join(p.message for p in exc.problems)
    elif isinstance(exc, WarningsNotAcknowledged):
        detail = "The diagram has warnings (see problems): send acknowledge_warnings=true to publish it anyway."
    else:
        errors = sum(p.severity == "error" for p in exc.problems)
        detail = (f"The diagram cannot be published: {errors} error{'s' if errors != 1 else ''} "
                  "(see problems, with their element ids).")
    return problem(exc.status, detail, problems=bpmn_problems(exc.problems),
                   needs_acknowledgement=isinstance(exc, WarningsNotAcknowledged))


def from_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    errors = _flatten(messages) if isinstance(messages, dict) else None
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    detail = "Some values are not valid; see errors." if errors else (exc.description or HTTPStatus(status).phrase)
    return problem(status, detail, errors=errors, headers=headers)


def _flatten(messages: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """webargs' ``{"json": {"values": {"x": ["..."]}}}`` as ``{"values.x": "..."}`` (locations dropped)."""
    flat: dict[str, str] = {}
    for key, value in messages.items():
        name = f"{prefix}{key}" if prefix or key not in {"json", "query", "headers", "form", "path"} else ""
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}." if name else ""))
        elif isinstance(value, list):
            flat[name or str(key)] = "; ".join(str(v) for v in value)
        else:
            flat[name or str(key)] = str(value)
    return flat
