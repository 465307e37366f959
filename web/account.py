"""Setting a password from a set-password link (no login: the link is the proof)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine import people, users
from engine.errors import InvalidForm

from .database import db

bp = Blueprint("account", __name__)


def _page(token: str, errors: dict[str, str], user=None, status: int = 200):
    return render_template("account/set_password.html", token=token, errors=errors, user=user,
                           min_length=users.MIN_PASSWORD_LENGTH), status


@bp.route("/account/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    """Choose a password from a link: the link works once and until it expires."""
    token = token[:200]
    if request.method == "GET":
        try:
            return _page(token, {}, people.check_link(db(), token))
        except InvalidForm as exc:
            return _page(token, exc.errors, status=410)
    try:
        user = people.set_password_from_link(db(), token, request.form.get("new", ""), request.form.get("repeated", ""))
    except InvalidForm as exc:
        db().rollback()
        user = None if "token" in exc.errors else people.check_link(db(), token)
        return _page(token, exc.errors, user, 410 if "token" in exc.errors else 422)
    db().commit()
    flash(f"Your password is set, {user.full_name}. Log in with your username {user.username}.", "success")
    return redirect(url_for("auth.login"))
