"""Administrators: the Java delegates that Camunda 7 diagrams name on service tasks (``camunda:class``,
delegate expressions), mapped to deptflow external task topics that workers fetch; unmapping."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import delegates
from engine.errors import Conflict, InvalidForm
from engine.vocabulary import Permission

from .database import act, db
from .security import permission_required

bp = Blueprint("delegates", __name__, url_prefix="/admin/delegates")


def _delegate() -> str:
    """The delegate of the form or the link (a validation report links to ``?delegate=org.acme.Archive``)."""
    return request.values.get("delegate", "")[:delegates.MAX_DELEGATE_LENGTH + 1]


def _page(errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200):
    values = values or {"delegate": _delegate()}
    page = render_template("admin/delegates.html", o=delegates.overview(db()), errors=errors or {}, values=values)
    return page, status


@bp.route("")
@permission_required(Permission.ADMINISTER)
def index():
    """The unmapped Java delegates of the published diagrams and drafts with their tasks; the mapped ones."""
    return _page()


@bp.route("", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def map_delegate():
    """Map a Java delegate to an external task topic (or to another topic)."""
    try:
        topic = request.form.get("topic", "")[:delegates.MAX_TOPIC_LENGTH + 1]
        mapping = act(delegates.map_delegate, _delegate(), topic)
    except InvalidForm as exc:
        return _page(exc.errors, exc.values, 422)
    flash(f"Mapped “{mapping.delegate}” to the topic {mapping.topic}: its service tasks wait for a worker of that "
          "topic. Publish the diagrams that waited for it again.", "success")
    return redirect(url_for("delegates.index"))


@bp.route("/unmap", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def unmap():
    """Remove a delegate's mapping (refused while a published version names it)."""
    try:
        mapping = act(delegates.unmap_delegate, _delegate())
    except Conflict as exc:
        return _page({"delegate": str(exc)}, {"delegate": _delegate()}, 409)
    flash(f"“{mapping.delegate}” is no longer mapped to {mapping.topic}.", "success")
    return redirect(url_for("delegates.index"))
