"""Log in and log out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import login_required, logout_user

from engine import directory, users
from engine.errors import DirectoryUnavailable, InvalidForm, LoginLocked

from .database import db
from .security import GENERATION_KEY, actor, open_session

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Check the credentials (local, else the directory) and open a session; a failure keeps the username typed."""
    username = request.form.get("username", "")
    if request.method == "POST":
        try:
            user = directory.authenticate(db(), current_app.extensions["deptflow_directory"], username,
                                          request.form.get("password", ""), request.remote_addr)
        except (LoginLocked, DirectoryUnavailable) as exc:
            db().commit()
            flash(str(exc), "error")
            return render_template("auth/login.html", username=username), exc.status
        db().commit()
        if user is not None:
            open_session(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown username or wrong password.", "error")
        return render_template("auth/login.html", username=username), 401
    return render_template("auth/login.html", username=username)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End every session of the user, in this browser and elsewhere (a copied cookie stops working)."""
    users.end_sessions(db(), actor(), "logout")
    db().commit()
    logout_user()
    session.pop(GENERATION_KEY, None)
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Change my password; my other sessions end, this one goes on. A directory user's password is kept
    by the directory: the page says so and takes nothing."""
    keeper = directory.password_keeper(current_app.extensions["deptflow_directory"], actor())
    if keeper is not None:
        return render_template("auth/password.html", keeper=keeper), 200 if request.method == "GET" else 403
    if request.method == "GET":
        return render_template("auth/password.html", errors={}, min_length=users.MIN_PASSWORD_LENGTH)
    form = request.form
    try:
        user = users.change_password(db(), actor(), form.get("current", ""), form.get("new", ""),
                                     form.get("repeated", ""))
    except InvalidForm as exc:
        db().rollback()
        return render_template("auth/password.html", errors=exc.errors,
                               min_length=users.MIN_PASSWORD_LENGTH), 422
    db().commit()
    open_session(user)
    flash("Your password is changed. Your other sessions have ended.", "success")
    return redirect(url_for("inbox.index"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("inbox.index")
