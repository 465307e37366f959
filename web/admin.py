"""Administrators: users and their roles, login limits."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import users
from engine.vocabulary import Permission

from .database import db
from .security import actor, permission_required

bp = Blueprint("admin", __name__)


@bp.route("/admin/users")
@permission_required(Permission.ADMINISTER)
def index():
    """Every user with their roles (each row is a small form), and the login limits in force."""
    return render_template("admin/users.html", users=users.all_users(db()), roles=users.all_roles(db()),
                           limits=users.login_limits(db()))


@bp.route("/admin/users/<int:user_id>", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def update(user_id: int):
    """Set a user's roles and whether they may log in."""
    user = users.update_user(db(), actor(), user_id, request.form.getlist("roles"), request.form.get("active") == "on")
    db().commit()
    flash(f"Saved {user.full_name}: {', '.join(r.name for r in user.roles) or 'no roles'}"
          f"{'' if user.active else ' (cannot log in)'}.", "success")
    return redirect(url_for("admin.index"))


@bp.route("/admin/login-limits/lift", methods=["POST"])
@permission_required(Permission.ADMINISTER)
def lift_limit():
    """Let an address try again at one username, or at every username."""
    address, username = request.form.get("address", ""), request.form.get("username") or None
    users.lift_login_limit(db(), actor(), address, username)
    db().commit()
    flash(f"{address} may try again{f' to log in as {username}' if username else ''}.", "success")
    return redirect(url_for("admin.index"))
