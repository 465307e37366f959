"""Administrators: users (searchable list, user page, new user), roles (list, role page with members,
new role) and login limits."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import directory, people, roles, users
from engine.errors import InvalidForm
from engine.vocabulary import Permission

from .database import act, db
from .params import page_arg
from .security import permission_required

bp = Blueprint("admin", __name__)

PERMISSIONS = [p.value for p in Permission]


def _text(name: str, limit: int = 200) -> str:
    return request.values.get(name, "")[:limit]


# --- users ---------------------------------------------------------------------------------------


@bp.route("/admin/users")
@permission_required(Permission.ADMINISTER)
def index():
    """Users a page at a time, searchable by name, username or e-mail and by role; the login limits in force."""
    query, role = _text("q"), _text("role", 64) or None
    return render_template("admin/users.html", found=people.user_list(db(), query, page_arg(), role), q=query,
                           role=role, roles=users.all_roles(db()), limits=users.login_limits(db()))


def _new_user_page(errors: dict[str, str], values: dict, status: int = 200):
    return render_template("admin/user_new.html", errors=errors, values=values, roles=_active_roles(),
                           min_length=users.MIN_PASSWORD_LENGTH), status


def _active_roles():
    return [r for r in users.all_roles(db()) if r.active]


@bp.route("/admin/users/new", methods=["GET", "POST"])
@permission_required(Permission.ADMINISTER)
def new_user():
    """Create a user with an initial password or a set-password link sent by e-mail."""
    if request.method == "GET":
        return _new_user_page({}, {"send_link": True})
    form = request.form
    send_link = form.get("password_mode", "link") == "link"
    try:
        created = act(people.create_user, form.get("username", ""), form.get("full_name", ""), form.get("email", ""),
                      role_keys=form.getlist("roles"), password=form.get("password", ""),
                      repeated=form.get("repeated", ""), send_link=send_link)
    except InvalidForm as exc:
        return _new_user_page(exc.errors, exc.values, 422)
    user = created.user
    flash(f"Created {user.full_name} ({user.username})"
          f"{f'; a set-password link is on its way to {user.email}' if send_link else ''}.", "success")
    return redirect(url_for("admin.user", user_id=user.id))


def _user_page(user_id: int, errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200):
    user = people.get(db(), user_id)
    return render_template("admin/user.html", u=user, roles=users.all_roles(db()), errors=errors or {},
                           values=values or {}, links=people.links_of(db(), user_id), link_state=people.link_state,
                           directory_user=directory.is_directory_user(user)), status


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@permission_required(Permission.ADMINISTER)
def user(user_id: int):
    """One user: details, roles, whether they may log in, set-password links. A POST sets the roles and
    whether they may log in (deactivation returns their tasks to the queues). One rule for both methods:
    an id out of range is then a 404 for either."""
    if request.method == "GET":
        return _user_page(user_id)
    try:
        user = act(people.update_access, user_id, request.form.getlist("roles"), request.form.get("active") == "on")
    except InvalidForm as exc:
        return _user_page(user_id, exc.errors, exc.values, 422)
    flash(f"Saved {user.full_name}: {', '.join(r.name for r in user.roles) or 'no roles'}"
          f"{'' if user.active else ' (cannot log in)'}.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/admin/users/<int:user_id>/details", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def update_details(user_id: int):
    """Correct a user's full name and e-mail address."""
    try:
        user = act(people.update_details, user_id, request.form.get("full_name", ""), request.form.get("email", ""))
    except InvalidForm as exc:
        return _user_page(user_id, exc.errors, exc.values, 422)
    flash(f"Saved {user.full_name}.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/admin/users/<int:user_id>/password-link", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def password_link(user_id: int):
    """Mail the user a new set-password link; earlier ones stop working."""
    try:
        act(people.send_password_link, user_id)
    except InvalidForm as exc:
        return _user_page(user_id, exc.errors, {}, 422)
    flash("A set-password link is on its way.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.route("/admin/login-limits/lift", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def lift_limit():
    """Let an address try again at one username, or at every username."""
    address, username = request.form.get("address", ""), request.form.get("username") or None
    act(users.lift_login_limit, address, username)
    flash(f"{address} may try again{f' to log in as {username}' if username else ''}.", "success")
    return redirect(url_for("admin.index"))


# --- roles ---------------------------------------------------------------------------------------


@bp.route("/admin/roles")
@permission_required(Permission.ADMINISTER)
def role_list():
    """Roles a page at a time with their member counts, searchable by key or name."""
    query = _text("q")
    return render_template("admin/roles.html", found=roles.role_list(db(), query, page_arg()), q=query)


def _new_role_page(errors: dict[str, str], values: dict, status: int = 200):
    return render_template("admin/role_new.html", errors=errors, values=values, permissions=PERMISSIONS,
                           roles=_active_roles()), status


@bp.route("/admin/roles/new", methods=["GET", "POST"])
@permission_required(Permission.ADMINISTER)
def new_role():
    """Create a role: its key is fixed from then on."""
    if request.method == "GET":
        return _new_role_page({}, {})
    form = request.form
    try:
        role = act(roles.create_role, form.get("key", ""), form.get("name", ""),
                   description=form.get("description", "")[:2000], permissions=form.getlist("permissions"),
                   manager_role=form.get("manager_role") or None)
    except InvalidForm as exc:
        return _new_role_page(exc.errors, exc.values, 422)
    flash(f"Created the role {role.name} ({role.key}).", "success")
    return redirect(url_for("admin.role", key=role.key))


def _role_page(key: str, errors: dict[str, str] | None = None, values: dict | None = None, status: int = 200):
    query = _text("q")
    page = roles.role_page(db(), key, query, page_arg())
    return render_template("admin/role.html", p=page, r=page.role, q=query, errors=errors or {}, values=values or {},
                           permissions=PERMISSIONS, roles=_active_roles()), status


@bp.route("/admin/roles/<key>")
@permission_required(Permission.ADMINISTER)
def role(key: str):
    """One role: name, permissions, managing role, active; its members (searchable, paged); what uses it."""
    return _role_page(key[:64])


@bp.route("/admin/roles/<key>", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def update_role(key: str):
    """Rename a role, set its permissions and managing role, deactivate or reactivate it."""
    form = request.form
    try:
        role = act(roles.update_role, key[:64], name=form.get("name", ""),
                   description=form.get("description", "")[:2000], permissions=form.getlist("permissions"),
                   manager_role=form.get("manager_role") or None, active=form.get("active") == "on")
    except InvalidForm as exc:
        return _role_page(key[:64], exc.errors, exc.values, 422)
    flash(f"Saved the role {role.name}.", "success")
    return redirect(url_for("admin.role", key=role.key))


@bp.route("/admin/roles/<key>/members", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def role_members(key: str):
    """Add members by username (several separated by commas or spaces) and remove the ticked ones."""
    form = request.form
    names = form.get("add", "")[:4000].replace(",", " ").split()
    remove = [int(i) for i in form.getlist("remove") if i.isascii() and i.isdigit() and len(i) < 10]
    try:
        added, removed = act(roles.set_members, key[:64], add=names, remove=remove)
    except InvalidForm as exc:
        return _role_page(key[:64], exc.errors, exc.values, 422)
    flash(f"Added {', '.join(added) or 'nobody'}; removed {', '.join(removed) or 'nobody'}.", "success")
    return redirect(url_for("admin.role", key=key[:64]))
