"""``/api/v1/processes`` and ``/api/v1/tasks``: start cases, work on tasks. One engine call each."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_smorest import Blueprint
from sqlalchemy.exc import IntegrityError

from engine import actions, idempotency, inbox, read_models

from ..database import db
from . import schemas
from .auth import act, actor, authenticate

processes = Blueprint("api_processes", __name__, url_prefix="/api/v1/processes",
                      description="Processes I may start, and starting a case")
tasks = Blueprint("api_tasks", __name__, url_prefix="/api/v1/tasks",
                  description="My tasks and my roles' queue; claim, unclaim, delegate, complete")
processes.before_request(authenticate)
tasks.before_request(authenticate)


@processes.route("")
@processes.response(200, schemas.Process(many=True))
def list_processes():
    """The processes my roles may start."""
    return actions.startable_processes(db(), actor())


@processes.route("/<key>/start", methods=["POST"])
@processes.arguments(schemas.IdempotencyHeader(), location="headers", as_kwargs=True)
@processes.arguments(schemas.StartRequest())
@processes.response(201, schemas.Started)
@processes.alt_response(200, schema=schemas.Started, description="An earlier request with this Idempotency-Key "
                                                                 "started the case: it is returned again")
def start(body: dict[str, Any], key: str, idempotency_key: str | None = None):
    """Start a case of the latest version with the start form's values; the answer names the case and the
    tasks it made ready (``Location``: the case, ``GET`` it for its data and history).

    Send an ``Idempotency-Key`` header to retry safely: the same key with the same request starts one case.
    """
    args = (key, body["values"], body["business_key"], idempotency_key)
    try:
        started = act(idempotency.start_once, *args)
    except IntegrityError:  # a concurrent request with the same key won: its case is the answer
        db().rollback()
        started = act(idempotency.start_once, *args)
    body = {"id": started.instance_id, "process_key": started.process_key, "title": started.title,
            "business_key": started.business_key, "status": started.status, "replayed": started.replayed,
            "tasks": [{"id": t.id, "name": t.name, "element_id": t.element_id} for t in started.tasks]}
    location = {"Location": url_for("api_cases.get_case", instance_id=started.instance_id)}
    return body, 200 if started.replayed else 201, location


def _section(rows: list[inbox.InboxRow], total: int, page: int, per_page: int) -> dict[str, Any]:
    return {"items": rows, "total": total, "page": page, "per_page": per_page}


@tasks.route("")
@tasks.arguments(schemas.InboxArgs(), location="query")
@tasks.response(200, schemas.Inbox)
def list_tasks(args: dict[str, int]):
    """A page of my tasks and of my roles' unclaimed tasks, earliest due first (a page past the end is the last)."""
    page = inbox.inbox(db(), actor(), assigned_page=args["assigned_page"], available_page=args["available_page"],
                       page_size=args["per_page"])
    return {"assigned": _section(page.assigned, page.assigned_total, page.assigned_page, page.page_size),
            "available": _section(page.available, page.available_total, page.available_page, page.page_size)}


@tasks.route("/<int:task_id>")
@tasks.response(200, schemas.TaskDetail)
def get_task(task_id: int):
    """The task, its form and what I may do with it."""
    view = read_models.task_view(db(), actor(), task_id)
    task = view.task
    return {
        "id": task.id, "name": task.name, "element_id": task.element_id, "status": task.status,
        "instance_id": task.instance_id, "case_title": view.instance.title,
        "assignee": task.assignee.username if task.assignee else None, "candidate_roles": task.candidate_roles,
        "due_at": task.due_at, "values": _jsonable(view.values),
        "form": [{"id": f.id, "label": f.label, "type": f.type, "required": f.required, "readonly": f.readonly,
                  "options": [list(o) for o in f.options], "help": f.help} for f in view.form.fields],
        "can_claim": view.can_claim, "can_unclaim": view.can_unclaim, "can_complete": view.can_complete,
        "delegates": [u.username for u in view.delegates],
    }


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}


@tasks.route("/<int:task_id>/claim", methods=["POST"])
@tasks.response(200, schemas.TaskState)
def claim(task_id: int):
    """Take an open task of one of my roles."""
    task = act(actions.claim, task_id)
    return {"id": task.id, "name": task.name, "status": task.status, "assignee": actor().username}


@tasks.route("/<int:task_id>/unclaim", methods=["POST"])
@tasks.response(200, schemas.TaskState)
def unclaim(task_id: int):
    """Give a task back to its roles' queue."""
    task = act(actions.unclaim, task_id)
    return {"id": task.id, "name": task.name, "status": task.status, "assignee": None}


@tasks.route("/<int:task_id>/delegate", methods=["POST"])
@tasks.arguments(schemas.DelegateRequest())
@tasks.response(200, schemas.TaskState)
def delegate(body: dict[str, str], task_id: int):
    """Hand a task I hold to a colleague of its role."""
    delegation = act(actions.delegate, task_id, body["to"])
    task = delegation.task
    return {"id": task.id, "name": task.name, "status": task.status, "assignee": delegation.to.username}


@tasks.route("/<int:task_id>/complete", methods=["POST"])
@tasks.arguments(schemas.CompleteRequest())
@tasks.response(200, schemas.Completed)
def complete(body: dict[str, Any], task_id: int):
    """Complete the task with its form's values; the case runs on to its next tasks (422: a message per field)."""
    done = act(actions.complete_task, task_id, body["values"])
    return {"id": done.id, "name": done.name, "status": done.status, "instance_id": done.instance_id,
            "instance_title": done.instance_title,
            "created": [{"id": t.id, "name": t.name, "element_id": t.element_id} for t in done.created]}
