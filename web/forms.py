"""Reading generated BPMN forms from a request."""

from __future__ import annotations

from typing import Any

from flask import request

from engine.files import Upload


def submitted_values() -> dict[str, Any]:
    """The posted form fields, minus the CSRF token; a chosen file as an :class:`~engine.files.Upload`."""
    values: dict[str, Any] = {key: value for key, value in request.form.items() if key != "csrf_token"}
    for key, storage in request.files.items():
        if storage.filename:
            values[key] = Upload(storage.filename, storage.read())
    return values


def uploaded_file(name: str = "file") -> Upload | None:
    """The file posted as ``name``, if one was chosen."""
    storage = request.files.get(name)
    return Upload(storage.filename, storage.read()) if storage is not None and storage.filename else None
