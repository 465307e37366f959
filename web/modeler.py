"""Process owners: edit diagrams in the browser, save drafts, validate, publish, compare, migrate."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import login_required

from engine import decisions, definitions, instance_migration, modeling, process_settings, process_versions, validation
from engine.errors import InvalidDefinition, InvalidForm, Problem
from engine.vocabulary import Permission

from .database import act, db
from .params import MAX_PAGE, int_arg
from .security import actor, permission_required

bp = Blueprint("modeler", __name__, url_prefix="/modeler")


def _problems_json(problems: list[Problem]) -> list[dict[str, Any]]:
    return [{"message": p.message, "element_id": p.element_id, "severity": p.severity, "kind": p.kind,
             "group": p.group} for p in problems]


def _xml_from_json() -> tuple[str, dict[str, Any]]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("xml"), str):
        abort(400)
    return body["xml"], body


def _expected_key(body: dict[str, Any]) -> str | None:
    """The process the editor was opened on: the diagram must not turn into another process."""
    key = body.get("process_key")
    return key if isinstance(key, str) and key else None


def _draft_json(draft) -> dict[str, Any]:
    return {
        "id": draft.id,
        "process_key": draft.process_key,
        "name": draft.name,
        "saved_at": draft.saved_at.strftime("%Y-%m-%d %H:%M:%S"),
        "author": draft.author.full_name if draft.author else "",
        "note": draft.note,
        "xml_url": url_for("modeler.draft_xml", draft_id=draft.id),
        "edit_url": url_for("modeler.edit", key=draft.process_key, draft=draft.id),
    }


def _version_arg(name: str, default: int | None = None) -> int | None:
    return int_arg(name, default, maximum=MAX_PAGE)


def _new_process_page(errors: dict[str, str], values: dict[str, str], import_problems=None, draft=None,
                      status: int = 200):
    return render_template("modeler/index.html", rows=modeling.catalogue(db()), roles=definitions.known_roles(db()),
                           errors=errors, values=values, import_problems=import_problems or [], draft=draft), status


@bp.route("")
@permission_required(Permission.MODEL)
def index():
    """Every process with its latest version and drafts; create a new one or import a file."""
    return _new_process_page({}, {})


@bp.route("/new", methods=["POST"])
@permission_required(Permission.MODEL)
def new():
    """A new process from the template, opened in the modeler as its first draft."""
    form = request.form
    try:
        draft = modeling.create_process(db(), actor(), form.get("key", ""), form.get("name", ""), form.get("role", ""))
    except InvalidForm as exc:
        db().rollback()
        return _new_process_page(exc.errors, exc.values, status=422)
    db().commit()
    flash(f"Created “{draft.name}” from the template; it is a draft until you publish it.", "success")
    return redirect(url_for("modeler.edit", key=draft.process_key, draft=draft.id))


@bp.route("/import", methods=["POST"])
@permission_required(Permission.MODEL)
def import_file():
    """Upload a .bpmn file: it becomes a draft; a file with errors shows them with their element ids.
    A .dmn file publishes its decisions (decisions have no drafts)."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _new_process_page({"file": "Choose a .bpmn or .dmn file."}, {}, status=422)
    data = upload.read(definitions.MAX_XML_BYTES + 1)
    if decisions.is_dmn_file(data):
        return _import_decisions(data, upload.filename)
    try:
        draft, report = modeling.import_file(db(), actor(), data, upload.filename)
    except InvalidDefinition as exc:
        db().rollback()
        return _new_process_page({}, {}, import_problems=exc.problems, status=422)
    db().commit()
    if report.errors:
        return _new_process_page({}, {}, import_problems=report.problems, draft=draft, status=422)
    flash(f"Imported {upload.filename} as a draft of “{draft.name}”.", "success")
    return redirect(url_for("modeler.edit", key=draft.process_key, draft=draft.id))


def _process_page(key: str, errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200):
    if not process_settings.may_see(db(), actor(), key):
        abort(403)
    return render_template("modeler/process.html", o=modeling.process_overview(db(), key),
                           settings=process_settings.settings_of(db(), actor(), key), errors=errors or {},
                           values=values), status


@bp.route("/<key>")
@login_required
def process(key: str):
    """Versions (who, when, note, SHA-256, open cases) and drafts of one process, and its settings (for
    process owners, the owner role and administrators)."""
    return _process_page(key)


@bp.route("/<key>/settings", methods=["POST"])
@login_required
def settings(key: str):
    """Save who may start the process, its owner role, separation of duties and task defaults."""
    form = request.form
    pairs = list(zip(form.getlist("pair_a"), form.getlist("pair_b"), strict=False))
    try:
        act(process_settings.update_settings, key, starter_roles=form.getlist("starter_roles"),
            owner_role=form.get("owner_role") or None, separated_tasks=form.getlist("separated_tasks"),
            separated_pairs=pairs, default_due=form.get("default_due", "")[:64],
            default_priority=form.get("default_priority", "")[:10])
    except InvalidForm as exc:
        return _process_page(key, exc.errors, exc.values, 422)
    flash("Saved the process settings; they apply to tasks created from now on.", "success")
    return redirect(url_for("modeler.process", key=key))


@bp.route("/<key>/edit")
@permission_required(Permission.MODEL)
def edit(key: str):
    """The modeler with properties panel, opened on the latest version or on a draft."""
    source = modeling.editor_source(db(), key, int_arg("draft"))
    if source.draft is not None:
        xml_url = url_for("modeler.draft_xml", draft_id=source.draft.id)
    else:
        xml_url = url_for("history.definition_xml", definition_id=source.definition.id)
    return render_template("modeler/edit.html", s=source, o=source.overview, xml_url=xml_url)


@bp.route("/drafts/<int:draft_id>.bpmn")
@permission_required(Permission.MODEL)
def draft_xml(draft_id: int):
    """A saved draft, as the BPMN file."""
    draft = modeling.get_draft(db(), draft_id)
    return Response(draft.xml, mimetype="application/xml; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{draft.process_key}.draft{draft.id}.bpmn"'})


@bp.route("/<key>/diff")
@permission_required(Permission.MODEL)
def diff(key: str):
    """Two versions on the diagram, added / removed / changed elements marked, with the changed properties."""
    latest = definitions.latest_definition(db(), key)
    new_version = _version_arg("b", latest.version)
    old_version = _version_arg("a", max(new_version - 1, 1))
    changes = process_versions.diff_versions(db(), key, old_version, new_version)
    return render_template("modeler/diff.html", d=changes, versions=process_versions.versions_of(db(), key), key=key)


@bp.route("/<key>/migrate")
@permission_required(Permission.MODEL)
def migrate_preview(key: str):
    """The open cases of a version and whether each can move to the newer one."""
    preview = instance_migration.migration_preview(db(), actor(), key, _version_arg("from", 0),
                                                   _version_arg("to"))
    return render_template("modeler/migrate.html", key=key, preview=preview, result=None)


@bp.route("/<key>/migrate", methods=["POST"], endpoint="migrate")
@permission_required(Permission.MODEL)
def migrate(key: str):
    """Move every case that can move; list the others with the tasks that block them."""
    result = instance_migration.migrate_instances(db(), actor(), key, _version_arg("from", 0),
                                                  _version_arg("to"))
    db().commit()
    return render_template("modeler/migrate.html", key=key, preview=None, result=result)


# --- JSON for modeler.js --------------------------------------------------------------------


@bp.route("/api/validate", methods=["POST"])
@permission_required(Permission.MODEL)
def api_validate():
    """The validation report of the diagram in the editor."""
    xml, _body = _xml_from_json()
    return jsonify(validation.validate(db(), xml).as_dict())


@bp.route("/api/drafts", methods=["POST"])
@permission_required(Permission.MODEL)
def api_save_draft():
    """Save the editor's diagram as a new draft."""
    xml, body = _xml_from_json()
    try:
        draft = modeling.save_draft(db(), actor(), xml, note=str(body.get("note") or ""),
                                    process_key=_expected_key(body))
    except InvalidDefinition as exc:
        db().rollback()
        return jsonify(problems=_problems_json(exc.problems)), 422
    db().commit()
    return jsonify(_draft_json(draft)), 201


@bp.route("/api/publish", methods=["POST"])
@permission_required(Permission.MODEL)
def api_publish():
    """Publish the editor's diagram as the next version; errors refuse it, warnings need an acknowledgement."""
    xml, body = _xml_from_json()
    try:
        publication = modeling.publish(db(), actor(), xml, note=str(body.get("note") or ""),
                                       acknowledge_warnings=body.get("acknowledge") is True,
                                       process_key=_expected_key(body))
    except InvalidDefinition as exc:
        db().rollback()
        errors = [p for p in exc.problems if p.severity == "error"]
        report = {"ok": not errors, "errors": len(errors),
                  "warnings": sum(p.severity == "warning" for p in exc.problems),
                  "problems": _problems_json(exc.problems)}
        return jsonify(report=report, needs_acknowledgement=isinstance(exc, modeling.WarningsNotAcknowledged)), 422
    db().commit()
    definition = publication.definition
    return jsonify(
        version=definition.version,
        process_key=definition.process_key,
        created=publication.created,
        sha256=definition.sha256,
        process_url=url_for("modeler.process", key=definition.process_key),
        definition_url=url_for("history.definition_xml", definition_id=definition.id),
        processes=[{"process_key": d.process_key, "version": d.version} for d in publication.definitions],
    )


# --- DMN decisions --------------------------------------------------------------------------


def _decisions_page(import_problems: list[Problem] | None = None, status: int = 200):
    return render_template("modeler/decisions.html", rows=decisions.catalogue(db()),
                           import_problems=import_problems or []), status


def _import_decisions(data: bytes, filename: str):
    try:
        published = modeling.import_decisions(db(), actor(), data, note=f"imported from {filename}")
    except InvalidDefinition as exc:
        db().rollback()
        return _decisions_page(exc.problems, 422)
    db().commit()
    flash(f"Published {filename}: " + ", ".join(f"{d.decision_key} version {d.version}" for d in published) + ".",
          "success")
    return redirect(url_for("modeler.decisions_index"))


@bp.route("/decisions")
@permission_required(Permission.MODEL)
def decisions_index():
    """Every published decision with its latest version; import a .dmn file or start a new one."""
    return _decisions_page()


@bp.route("/decisions/import", methods=["POST"])
@permission_required(Permission.MODEL)
def decisions_import():
    """Upload a .dmn file: each of its decisions is published as its next version."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _decisions_page([Problem("Choose a .dmn file.")], 422)
    return _import_decisions(upload.read(definitions.MAX_XML_BYTES + 1), upload.filename)


@bp.route("/decisions/new")
@permission_required(Permission.MODEL)
def decision_new():
    """The decision editor on a new file with one empty decision table."""
    return render_template("modeler/decision_edit.html", s=None, xml_url=url_for("modeler.decision_template"))


@bp.route("/decisions/template.dmn")
@permission_required(Permission.MODEL)
def decision_template():
    return Response(modeling.decision_template(), mimetype="application/xml; charset=utf-8")


@bp.route("/decisions/<key>")
@permission_required(Permission.MODEL)
def decision_edit(key: str):
    """The decision editor (camunda-dmn-js) on a version of a decision (the latest by default)."""
    source = modeling.decision_source(db(), key, int_arg("version"))
    return render_template("modeler/decision_edit.html", s=source, xml_url=url_for(
        "modeler.decision_xml", key=key, version=source.definition.version))


@bp.route("/decisions/<key>/v<int:version>.dmn")
@permission_required(Permission.MODEL)
def decision_xml(key: str, version: int):
    """A published version of a decision, as its DMN file."""
    definition = modeling.decision_source(db(), key, version).definition
    return Response(definition.xml, mimetype="application/xml; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{key}.v{version}.dmn"'})


@bp.route("/api/decisions", methods=["POST"])
@permission_required(Permission.MODEL)
def api_publish_decisions():
    """Publish the decision editor's file: the next version of each of its decisions."""
    xml, body = _xml_from_json()
    key = body.get("decision_key")
    try:
        published = modeling.import_decisions(db(), actor(), xml, note=str(body.get("note") or ""),
                                              decision_key=key if isinstance(key, str) and key else None)
    except InvalidDefinition as exc:
        db().rollback()
        return jsonify(problems=_problems_json(exc.problems)), 422
    db().commit()
    return jsonify(decisions=[{"decision_key": d.decision_key, "version": d.version, "sha256": d.sha256,
                               "url": url_for("modeler.decision_edit", key=d.decision_key)} for d in published])
