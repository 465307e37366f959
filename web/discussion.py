"""Comments on cases and tasks, files added to a case, and downloading a case's files."""

from __future__ import annotations

import io

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for
from flask_login import login_required

from engine import attachments, comments, read_models
from engine.errors import InvalidForm

from .database import act, db
from .forms import uploaded_file
from .security import actor

bp = Blueprint("discussion", __name__)


@bp.route("/instances/<int:instance_id>/comments", methods=["POST"])
@login_required
def comment_on_case(instance_id: int):
    """Add a comment to the case; an empty or too long one re-renders the page with the message."""
    try:
        act(comments.add, instance_id, request.form.get("body", ""))
    except InvalidForm as exc:
        return _case_page(instance_id, exc)
    flash("Your comment was added.", "success")
    return redirect(url_for("processes.instance", instance_id=instance_id, _anchor="comments"))


@bp.route("/tasks/<int:task_id>/comments", methods=["POST"])
@login_required
def comment_on_task(task_id: int):
    """Add a comment to the task's case, marked with the task."""
    try:
        act(comments.add_on_task, task_id, request.form.get("body", ""))
    except InvalidForm as exc:
        view = read_models.task_view(db(), actor(), task_id)
        return render_template("inbox/task.html", view=view, errors={}, discussion_errors=exc.errors,
                               discussion_values=exc.values), 422
    flash("Your comment was added.", "success")
    return redirect(url_for("inbox.task", task_id=task_id, _anchor="comments"))


@bp.route("/instances/<int:instance_id>/attachments", methods=["POST"])
@login_required
def attach(instance_id: int):
    """Add a file to the case; a refused file re-renders the page with the reason, nothing stored."""
    try:
        attachment = act(attachments.attach_to_case, instance_id, uploaded_file())
    except InvalidForm as exc:
        return _case_page(instance_id, exc)
    flash(f"“{attachment.filename}” was added to the case.", "success")
    return redirect(url_for("processes.instance", instance_id=instance_id, _anchor="attachments"))


@bp.route("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    """The file, always as a download (never shown inline), checked against its SHA-256 first."""
    attachment, data = attachments.download(db(), actor(), attachment_id)
    response = send_file(io.BytesIO(data), mimetype=attachment.content_type, as_attachment=True,
                         download_name=attachment.filename, etag=attachment.sha256, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _case_page(instance_id: int, exc: InvalidForm):
    detail = read_models.instance_detail(db(), actor(), instance_id)
    return render_template("processes/instance.html", detail=detail, actions=detail.actions, errors={}, values={},
                           discussion_errors=exc.errors, discussion_values=exc.values), 422
