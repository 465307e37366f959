"""Process owners over the API: check a BPMN file, publish it, list a process's versions, download one.

The same engine functions and rules as the modeler's pages: checking and publishing need the ``model``
permission (:mod:`engine.owners`), the version list those who may open the process page, a download
:func:`engine.process_versions.downloadable_definition`'s rule. A file comes as the request body
(``application/xml``) or as the multipart field ``file``.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request, url_for
from flask_smorest import Blueprint
from werkzeug.exceptions import UnsupportedMediaType

from engine import modeling, process_versions
from engine.definitions import MAX_XML_BYTES
from engine.errors import DiagramTooLarge, InvalidForm, NotBpmn, Problem

from ..database import db
from . import schemas
from .auth import act, actor, authenticate
from .problems import bpmn_problems

bp = Blueprint("api_process_owners", __name__, url_prefix="/api/v1",
               description="Process owners: check and publish BPMN files, list versions, download a version")
bp.before_request(authenticate)

#: the media types a BPMN file may be sent as (besides multipart/form-data)
XML_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")

_FILE_BODY = {
    "required": True,
    "description": "The BPMN 2.0 file: the body itself, or the multipart field `file`",
    "content": {
        "application/xml": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
    },
}


def _diagram() -> bytes:
    """The request's BPMN file (at most :data:`MAX_XML_BYTES`).

    :raises UnsupportedMediaType: neither XML nor multipart
    :raises InvalidForm: multipart without the field ``file``
    :raises DiagramTooLarge: the file is larger than a diagram may be
    """
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidForm({"file": "Send the BPMN file as the multipart field file."}, {})
        data = upload.read(MAX_XML_BYTES + 1)
    elif request.mimetype in XML_TYPES:
        data = request.get_data(cache=False)
    else:
        raise UnsupportedMediaType(f"Send the BPMN file as {', '.join(XML_TYPES)} or as the multipart field file.")
    if len(data) > MAX_XML_BYTES:
        raise DiagramTooLarge([Problem(f"The file is larger than {MAX_XML_BYTES // 1024} KiB.")])
    return data


@bp.route("/definitions/validate", methods=["POST"])
@bp.doc(requestBody=_FILE_BODY)
@bp.response(200, schemas.FileCheck)
def validate():
    """Check a BPMN file as ``deptflow check`` does, against this installation's roles and group mappings;
    publish nothing. A file that cannot be published is still a 200: the report is the answer (400: not BPMN)."""
    result = modeling.check(db(), actor(), _diagram())
    if result.verdict == "not BPMN":
        raise NotBpmn(result.report.problems)
    return {"verdict": result.verdict, "processes": [{"key": k, "name": n} for k, n in result.processes],
            "needs_mapping": bpmn_problems(result.needs_mapping), "blocks": bpmn_problems(result.blocks),
            "warnings": bpmn_problems(result.report.warnings), "notes": bpmn_problems(result.report.notes)}


@bp.route("/definitions", methods=["POST"])
@bp.doc(requestBody=_FILE_BODY)
@bp.arguments(schemas.PublishArgs(), location="query")
@bp.response(201, schemas.Published)
@bp.alt_response(200, schema=schemas.Published, description="The file's content is the latest version already: "
                                                             "nothing new was published")
def publish(args: dict[str, Any]):
    """Publish a BPMN file: each executable process of it becomes its next version (422: the problems that
    refuse it, with element ids; warnings alone need ``acknowledge_warnings=true``)."""
    publication = act(modeling.publish, _diagram(), note=args["note"],
                      acknowledge_warnings=args["acknowledge_warnings"], process_key=args.get("process_key"))
    definition = publication.definition
    body = {"process_key": definition.process_key, "version": definition.version, "sha256": definition.sha256,
            "created": publication.created,
            "processes": [{"process_key": d.process_key, "version": d.version} for d in publication.definitions],
            "warnings": bpmn_problems(publication.report.warnings)}
    location = url_for("api_process_owners.download", key=definition.process_key, version=definition.version)
    return body, 201 if publication.created else 200, {"Location": location}


@bp.route("/processes/<key>/versions")
@bp.response(200, schemas.Version(many=True))
def versions(key: str):
    """The published versions of a process, newest first (process owners, its owner role, administrators)."""
    return [{"version": row.definition.version, "name": row.definition.name, "sha256": row.definition.sha256,
             "published_at": row.definition.published_at, "note": row.definition.note or "",
             "published_by": row.definition.published_by.username if row.definition.published_by else None,
             "open_cases": row.open_cases} for row in modeling.versions(db(), actor(), key)]


@bp.route("/processes/<key>/versions/<int:version>/bpmn")
@bp.doc(responses={200: {"description": "The BPMN file of the version",
                          "content": {"application/xml": {"schema": {"type": "string"}}}}})
def download(key: str, version: int):
    """A published version's BPMN file, for those who work with the process (as the case pages' download)."""
    definition = process_versions.downloadable_version(db(), actor(), key, version)
    return Response(definition.xml, mimetype="application/xml", headers={
        "Content-Disposition": f'attachment; filename="{definition.process_key}.v{definition.version}.bpmn"'})
