"""Log in and log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required, login_user, logout_user

from engine import users
from engine.errors import LoginLocked

from .database import db
from .security import LoginUser

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Check the credentials and open a session; a failure keeps the username typed."""
    username = request.form.get("username", "")
    if request.method == "POST":
        try:
            user = users.authenticate(db(), username, request.form.get("password", ""))
        except LoginLocked as exc:
            db().commit()
            flash(str(exc), "error")
            return render_template("auth/login.html", username=username), 429
        db().commit()
        if user is not None:
            login_user(LoginUser(user))
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown username or wrong password.", "error")
        return render_template("auth/login.html", username=username), 401
    return render_template("auth/login.html", username=username)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End the session."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("inbox.index")
