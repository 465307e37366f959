"""My notifications: the list behind the badge, mark as read, e-mail on or off."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from engine import notify

from .database import db
from .security import actor

bp = Blueprint("notifications", __name__)


@bp.route("/notifications")
@login_required
def index():
    """The newest hundred notifications; those unread are marked as new on the page and become read."""
    notes = notify.latest(db(), actor())
    unread = notify.mark_seen(db(), actor(), notes)
    db().commit()
    return render_template("notifications/index.html", notes=notes, unread_ids=unread)


@bp.route("/notifications/read", methods=["POST"])
@login_required
def read_all():
    """Mark every notification as read."""
    notify.mark_all_read(db(), actor())
    db().commit()
    return redirect(url_for("notifications.index"))


@bp.route("/notifications/email", methods=["POST"])
@login_required
def email():
    """Switch e-mail notifications on or off."""
    enabled = request.form.get("enabled") == "on"
    notify.set_email(db(), actor(), enabled)
    db().commit()
    flash("E-mail notifications are on." if enabled else "E-mail notifications are off.", "info")
    return redirect(url_for("notifications.index"))
