"""Auditors: search every case, read one case's full history, export, verify the chain."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, current_app, render_template, request
from flask_login import login_required

from engine import audit, audit_signing, definitions, history, process_versions
from engine.errors import Conflict, InvalidForm
from engine.vocabulary import Permission

from .database import db
from .params import page_arg
from .security import actor, permission_required

bp = Blueprint("history", __name__)


def filters_from_request() -> history.InstanceFilter:
    """The search filters; a date the search cannot reach (a day after it would pass 9999-12-31) is a field error."""
    args = {k: v for k, v in request.args.items() if k != "page"}
    errors = {name: "Enter a date before 9999-12-31." for name in ("started_from", "started_to")
              if _is_last_day(args.get(name))}
    try:
        filters = history.InstanceFilter.parse(args)
    except InvalidForm as exc:
        errors = {**exc.errors, **errors}
    if errors:
        raise InvalidForm(errors, args)
    return filters


def _is_last_day(text: str | None) -> bool:
    try:
        return date.fromisoformat((text or "").strip()) == date.max
    except ValueError:
        return False


@bp.route("/audit")
@permission_required(Permission.AUDIT)
def search():
    """Search all cases by process, version, status, dates, people, business key or a data value."""
    processes = definitions.all_processes(db())
    try:
        filters = filters_from_request()
    except InvalidForm as exc:
        return render_template("history/search.html", page=None, processes=processes, errors=exc.errors,
                               args=exc.values, statuses=history.STATUSES), 422
    page = history.search_instances(db(), actor(), filters, page_arg())
    return render_template("history/search.html", page=page, processes=processes, errors={}, args=request.args,
                           statuses=history.STATUSES)


@bp.route("/audit/export.<any(csv, json):fmt>")
@permission_required(Permission.AUDIT)
def export(fmt: str):
    """The search result with every event and its chain hashes, as CSV or JSON."""
    rows = history.export_instances(db(), actor(), filters_from_request())
    return _download(history.to_csv(rows) if fmt == "csv" else history.to_json(rows), f"deptflow-cases.{fmt}")


@bp.route("/audit/checkpoint.json")
@permission_required(Permission.AUDIT)
def checkpoint():
    """Every chain's head now, signed with the audit key: a file for auditors to keep elsewhere."""
    signer = current_app.extensions["deptflow_workflow_engine"].audit_signer
    if signer is None:
        raise Conflict("There is no audit signing key yet (deptflow init creates it).")
    try:
        taken = audit_signing.take_checkpoint(db(), signer)
    except audit_signing.CheckpointError as exc:
        raise Conflict(f"No checkpoint: {exc}.") from exc
    return _download(taken.to_json(), f"deptflow-checkpoint-{taken.taken_at.replace(':', '')}.json")


@bp.route("/audit/verify")
@permission_required(Permission.AUDIT)
def verify():
    """Walk the whole hash chain now and say whether it is intact."""
    return render_template("history/verify.html", result=audit.verify(db()))


@bp.route("/history/<int:instance_id>")
@login_required
def instance(instance_id: int):
    """The diagram with the path taken, the timeline and the data before/after each step."""
    return render_template("history/instance.html", h=history.instance_history(db(), actor(), instance_id))


@bp.route("/history/<int:instance_id>.<any(csv, json):fmt>")
@login_required
def instance_export(instance_id: int, fmt: str):
    """One case's events with their chain hashes."""
    record = history.export_history(db(), actor(), instance_id)
    body = history.to_csv([record]) if fmt == "csv" else history.to_json(record)
    return _download(body, f"deptflow-case-{instance_id}.{fmt}")


@bp.route("/definitions/<int:definition_id>.bpmn")
@login_required
def definition_xml(definition_id: int):
    """A published version of a diagram, as the BPMN file, for those who work with the process."""
    definition = process_versions.downloadable_definition(db(), actor(), definition_id)
    name = f"{definition.process_key}.v{definition.version}.bpmn"
    return _download(definition.xml, name, "application/xml")


def _download(body: str, filename: str, mimetype: str | None = None) -> Response:
    types = {"csv": "text/csv", "json": "application/json"}
    mimetype = mimetype or types[filename.rsplit(".", 1)[1]]
    return Response(body, mimetype=f"{mimetype}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
