"""Administrators: what Camunda 7 diagrams name that deptflow does not have, mapped — groups (lanes,
``camunda:candidateGroups``) to roles, existing ones or one created for the group in the same step (Admin →
Groups); Java delegates (``camunda:class``, delegate expressions on service tasks) to external task topics that
workers fetch (Admin → Java delegates); unmapping. One blueprint a kind, the same views."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import delegates, groups, mappings, users
from engine.errors import Conflict, InvalidForm
from engine.vocabulary import Permission

from .database import act, db
from .security import permission_required


@dataclass(frozen=True)
class Page:
    """The page of one kind of mapping."""

    #: the blueprint's name, its URL under /admin/ and its template under admin/
    name: str
    #: the form fields of what is mapped and of its target, and how many characters of each are read
    field: str
    field_limit: int
    target: str
    target_limit: int
    overview: Callable[[Any], mappings.Overview]
    map: Callable[..., mappings.Mapping]
    unmap: Callable[..., mappings.Mapping]
    #: the flash messages once mapped and once unmapped
    mapped: Callable[[Any], str]
    unmapped: Callable[[Any], str]
    #: more for the template
    context: Callable[[], dict[str, Any]] = dict


GROUPS = Page(
    "groups", "group", groups.MAX_GROUP_LENGTH + 1, "role", 64, groups.overview, groups.map_group, groups.unmap_group,
    lambda m: f"Mapped the group “{m.group_id}” to the role {m.role_key}; new tasks that name it go to that role. "
              "Publish the diagrams that waited for it again.",
    lambda m: f"The group “{m.group_id}” is no longer mapped to {m.role_key}; open tasks keep their roles.",
    lambda: {"roles": [r for r in users.all_roles(db()) if r.active]})
DELEGATES = Page(
    "delegates", "delegate", delegates.MAX_DELEGATE_LENGTH + 1, "topic", delegates.MAX_TOPIC_LENGTH + 1,
    delegates.overview, delegates.map_delegate, delegates.unmap_delegate,
    lambda m: f"Mapped “{m.delegate}” to the topic {m.topic}: its service tasks wait for a worker of that topic. "
              "Publish the diagrams that waited for it again.",
    lambda m: f"“{m.delegate}” is no longer mapped to {m.topic}.")


def _name(page: Page) -> str:
    """What is mapped, from the form or the link (a validation report links to ``?group=accounting``)."""
    return request.values.get(page.field, "")[:page.field_limit]


def _page(page: Page, errors: dict[str, str] | None = None, values: dict | None = None, form: str = "",
          status: int = 200):
    values = values or {page.field: _name(page)}
    return render_template(f"admin/{page.name}.html", o=page.overview(db()), errors=errors or {}, values=values,
                           form=form, **page.context()), status


def _blueprint(page: Page) -> Blueprint:
    bp = Blueprint(page.name, __name__, url_prefix=f"/admin/{page.name}")

    @bp.route("", endpoint="index")
    @permission_required(Permission.ADMINISTER)
    def index():
        """The unmapped names of the published diagrams and drafts with the elements naming them; the mapped ones."""
        return _page(page)

    @bp.route("", methods=["POST"], endpoint=f"map_{page.field}")
    @permission_required(Permission.ADMINISTER)
    def map_():
        """Map a name (a group, a Java delegate) to its target (a role, a topic), or to another one."""
        try:
            mapping = act(page.map, _name(page), request.form.get(page.target, "")[:page.target_limit])
        except InvalidForm as exc:
            return _page(page, exc.errors, exc.values, "map", 422)
        flash(page.mapped(mapping), "success")
        return redirect(url_for(f"{page.name}.index"))

    @bp.route("/unmap", methods=["POST"], endpoint="unmap")
    @permission_required(Permission.ADMINISTER)
    def unmap():
        """Remove a mapping (a Java delegate's is refused while a published version names it)."""
        try:
            mapping = act(page.unmap, _name(page))
        except Conflict as exc:  # a Java delegate that a published version names
            return _page(page, {page.field: str(exc)}, {page.field: _name(page)}, status=409)
        flash(page.unmapped(mapping), "success")
        return redirect(url_for(f"{page.name}.index"))

    return bp


groups_bp = _blueprint(GROUPS)
delegates_bp = _blueprint(DELEGATES)


@groups_bp.route("/role", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def new_role():
    """Create a role for a group and map the group to it."""
    form = request.form
    try:
        mapping = act(groups.map_group_to_new_role, _name(GROUPS), form.get("key", "")[:100],
                      form.get("name", "")[:300])
    except InvalidForm as exc:
        return _page(GROUPS, exc.errors, exc.values, "role", 422)
    flash(f"Created the role {mapping.role_key} and mapped the group “{mapping.group_id}” to it; add its members "
          "on the role's page.", "success")
    return redirect(url_for("admin.role", key=mapping.role_key))
