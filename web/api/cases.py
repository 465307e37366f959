"""``/api/v1/cases`` and ``/api/v1/audit``: a case, its history, the case actions, the auditors' search."""

from __future__ import annotations

from typing import Any

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from engine import case_actions, history, read_models
from engine.db import ProcessInstance

from ..database import db
from ..history import filters_from_request
from . import schemas
from .auth import act, actor, authenticate

cases = Blueprint("api_cases", __name__, url_prefix="/api/v1/cases",
                  description="A case's data, tasks and history; cancel, suspend, resume, retry")
audit = Blueprint("api_audit", __name__, url_prefix="/api/v1/audit", description="Auditors: search every case")
cases.before_request(authenticate)
audit.before_request(authenticate)


def _case(instance: ProcessInstance) -> dict[str, Any]:
    return {"id": instance.id, "process_key": instance.process_key, "title": instance.title,
            "business_key": instance.business_key, "status": instance.status,
            "started_by": instance.started_by.username, "started_at": instance.started_at,
            "ended_at": instance.ended_at}


def case_detail(instance_id: int) -> dict[str, Any]:
    """The case as :func:`engine.read_models.instance_detail` shows it to the API's actor."""
    detail = read_models.instance_detail(db(), actor(), instance_id)
    return {
        **_case(detail.instance), "version": detail.instance.definition.version, "data": detail.instance.data or {},
        "tasks": [{"id": t.id, "name": t.name, "element_id": t.element_id, "status": t.status,
                   "assignee": t.assignee.username if t.assignee else None, "candidate_roles": t.candidate_roles,
                   "created_at": t.created_at, "completed_at": t.completed_at} for t in detail.tasks],
        "actions": sorted(detail.actions),
        "incident": detail.incident.data.get("message") if detail.incident else None,
    }


@cases.route("/<int:instance_id>")
@cases.response(200, schemas.CaseDetail)
def get_case(instance_id: int):
    """A case I took part in (or may read): its data, tasks and what I may do to it."""
    return case_detail(instance_id)


@cases.route("/<int:instance_id>/events")
@cases.response(200, schemas.CaseEvents)
def case_events(instance_id: int):
    """The case's audit events, oldest first, with their chain numbers and hashes."""
    record = history.export_history(db(), actor(), instance_id)
    return {"id": record["id"], "events": record["events"]}


_ACTIONS = {"cancel": case_actions.cancel, "suspend": case_actions.suspend, "resume": case_actions.resume,
            "retry": case_actions.retry}


def _case_action(name: str):
    @cases.route(f"/<int:instance_id>/{name}", methods=["POST"], endpoint=name)
    @cases.arguments(schemas.ReasonRequest())
    @cases.response(200, schemas.Case)
    def view(body: dict[str, str], instance_id: int):
        act(_ACTIONS[name], instance_id, body["reason"])
        return _case(db().get(ProcessInstance, instance_id, populate_existing=True))

    view.__doc__ = {
        "cancel": "End an open case for good, with a reason (starter, owner role, administrator).",
        "suspend": "Hold a running case, with a reason (owner role, administrator).",
        "resume": "Let a suspended case go on, with a reason (owner role, administrator).",
        "retry": "Run a stopped case (an incident) again from the failed step (owner role, administrator).",
    }[name]
    return view


for _name in _ACTIONS:
    _case_action(_name)


@audit.route("/cases")
@audit.arguments(schemas.AuditArgs(), location="query")
@audit.response(200, schemas.CasePage)
def search(args: dict[str, Any]):
    """Search every case by process, version, status, start dates, people, business key or a data value."""
    history.check_auditor(actor())  # before the filters: a refusal says so, whatever was asked
    page = history.search_instances(db(), actor(), filters_from_request(), args["page"], args["per_page"])
    return {"items": [_case(i) for i in page.rows], "total": page.total, "page": page.page,
            "per_page": page.per_page}


#: media types of the export
EXPORT_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv"}


@audit.route("/export")
@audit.arguments(schemas.ExportArgs(), location="query")
@audit.doc(responses={200: {
    "description": "The events, streamed in the order they were written: each with every field its hash covers, "
                   "its chain, seq, prev_hash and hash (an auditor recomputes them offline: SHA-256 of the "
                   "canonical JSON of chain, seq, at, kind, instance_id, actor_id, task_id, element_id, data, "
                   "prev_hash; sorted keys, no spaces, UTF-8) and the actor's username",
    "content": {"application/jsonl": {"schema": {"$ref": "#/components/schemas/Event"}},
                "text/csv": {"schema": {"type": "string"}}}}})
def export(args: dict[str, Any]):
    """Auditors: the event log of the cases the search's filters find (all of it without a filter), of one
    case, between two days — streamed as JSON Lines or CSV, with each event's chain hashes."""
    history.check_auditor(actor())  # before the filters: a refusal says so, whatever was asked
    filters = filters_from_request()
    events = history.export_events(db(), actor(), filters, instance_id=args.get("instance_id"),
                                   since=args.get("events_from"), until=args.get("events_to"))
    lines = history.to_csv_lines(events) if args["format"] == "csv" else history.to_json_lines(events)
    return Response(stream_with_context(lines), mimetype=EXPORT_TYPES[args["format"]], headers={
        "Content-Disposition": f'attachment; filename="deptflow-events.{args["format"]}"'})
