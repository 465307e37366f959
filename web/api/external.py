"""``/api/v1/external-tasks``: external task workers fetch and lock, complete, fail and extend their tasks.

A worker authenticates with an API token of a user whose roles grant ``external_worker``. One engine
call each (:mod:`engine.external_tasks`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask_smorest import Blueprint

from engine import external_tasks

from . import schemas
from .auth import act, authenticate

bp = Blueprint("api_external_tasks", __name__, url_prefix="/api/v1/external-tasks",
               description="External task workers: fetch and lock tasks of their topics, complete or fail them")
bp.before_request(authenticate)


@bp.route("/fetch-and-lock", methods=["POST"])
@bp.arguments(schemas.FetchAndLockRequest())
@bp.response(200, schemas.LockedTask(many=True))
def fetch_and_lock(body: dict[str, Any]):
    """Lock up to max_tasks free tasks of the topics for the worker, oldest first, with their cases' variables
    (an empty list: nothing to do; ask again later)."""
    return act(external_tasks.fetch_and_lock, body["worker_id"], body["topics"], body["max_tasks"],
               timedelta(seconds=body["lock_duration"]))


@bp.route("/<int:task_id>/complete", methods=["POST"])
@bp.arguments(schemas.ExternalCompleteRequest())
@bp.response(200, schemas.ExternalTaskState)
def complete(body: dict[str, Any], task_id: int):
    """Complete a task the worker holds, its variables merged into the case's data; the case runs on
    (409: another worker holds it, named)."""
    return act(external_tasks.complete, body["worker_id"], task_id, body["variables"])


@bp.route("/<int:task_id>/failure", methods=["POST"])
@bp.arguments(schemas.FailureRequest())
@bp.response(200, schemas.ExternalTaskState)
def failure(body: dict[str, Any], task_id: int):
    """Report that the worker failed at a task it holds: the lock is released, the task is fetched again after
    retry_after seconds; at zero retries the case stops as an incident with the message."""
    return act(external_tasks.fail, body["worker_id"], task_id, body["message"], body["retries"],
               timedelta(seconds=body["retry_after"]))


@bp.route("/<int:task_id>/extend-lock", methods=["POST"])
@bp.arguments(schemas.ExtendLockRequest())
@bp.response(200, schemas.ExternalTaskState)
def extend_lock(body: dict[str, Any], task_id: int):
    """Keep a task the worker holds lock_duration seconds from now."""
    return act(external_tasks.extend_lock, body["worker_id"], task_id, timedelta(seconds=body["lock_duration"]))
