"""Reading generated BPMN forms from a request."""

from __future__ import annotations

from typing import Any

from flask import request


def submitted_values() -> dict[str, Any]:
    """The posted form fields, minus the CSRF token."""
    return {key: value for key, value in request.form.items() if key != "csrf_token"}
