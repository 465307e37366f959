"""Administrators: the groups diagrams name (lanes, ``camunda:candidateGroups``) that are no role, mapped to
roles — to an existing one, or to a role created for the group in the same step; unmapping."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import groups, users
from engine.errors import InvalidForm
from engine.vocabulary import Permission

from .database import act, db
from .security import permission_required

bp = Blueprint("groups", __name__, url_prefix="/admin/groups")


def _group() -> str:
    """The group of the form or the link (a validation report links to ``?group=accounting``)."""
    return request.values.get("group", "")[:groups.MAX_GROUP_LENGTH + 1]


def _page(errors: dict[str, str] | None = None, values: dict | None = None, form: str = "", status: int = 200):
    values = values or {"group": _group()}
    return render_template("admin/groups.html", o=groups.overview(db()), errors=errors or {}, values=values,
                           form=form, roles=[r for r in users.all_roles(db()) if r.active]), status


@bp.route("")
@permission_required(Permission.ADMINISTER)
def index():
    """The unmapped groups of the published diagrams and drafts with the elements naming them; the mapped ones."""
    return _page()


@bp.route("", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def map_group():
    """Map a group to an existing role (or to another role)."""
    try:
        mapping = act(groups.map_group, _group(), request.form.get("role", "")[:64])
    except InvalidForm as exc:
        return _page(exc.errors, exc.values, "map", 422)
    flash(f"Mapped the group “{mapping.group_id}” to the role {mapping.role_key}; new tasks that name it go to "
          "that role. Publish the diagrams that waited for it again.", "success")
    return redirect(url_for("groups.index"))


@bp.route("/role", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def new_role():
    """Create a role for a group and map the group to it."""
    form = request.form
    try:
        mapping = act(groups.map_group_to_new_role, _group(), form.get("key", "")[:100], form.get("name", "")[:300])
    except InvalidForm as exc:
        return _page(exc.errors, exc.values, "role", 422)
    flash(f"Created the role {mapping.role_key} and mapped the group “{mapping.group_id}” to it; add its members "
          "on the role's page.", "success")
    return redirect(url_for("admin.role", key=mapping.role_key))


@bp.route("/unmap", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def unmap():
    """Remove a group's mapping; open tasks keep their roles."""
    mapping = act(groups.unmap_group, _group())
    flash(f"The group “{mapping.group_id}” is no longer mapped to {mapping.role_key}; open tasks keep their roles.",
          "success")
    return redirect(url_for("groups.index"))
