"""The inbox and the task page: claim, unclaim, delegate, complete."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from engine import actions, inbox, read_models
from engine.errors import InvalidForm

from .database import act, db
from .forms import submitted_values
from .params import page_arg
from .security import actor

bp = Blueprint("inbox", __name__)


@bp.route("/")
@login_required
def index():
    """My tasks and my roles' open tasks, earliest due first, a page of each (``?mine=2&queue=3``)."""
    page = inbox.inbox(db(), actor(), assigned_page=page_arg("mine"), available_page=page_arg("queue"))
    return render_template("inbox/index.html", inbox=page)


@bp.route("/tasks/<int:task_id>")
@login_required
def task(task_id: int):
    """The task with its case, the data so far and the generated form."""
    return render_template("inbox/task.html", view=read_models.task_view(db(), actor(), task_id), errors={})


@bp.route("/tasks/<int:task_id>/claim", methods=["POST"])
@login_required
def claim(task_id: int):
    """Take the task so that nobody else works on it."""
    task = act(actions.claim, task_id)
    flash(f"You claimed “{task.name}”.", "success")
    return redirect(url_for("inbox.task", task_id=task_id))


@bp.route("/tasks/<int:task_id>/unclaim", methods=["POST"])
@login_required
def unclaim(task_id: int):
    """Give the task back to the role's queue."""
    task = act(actions.unclaim, task_id)
    flash(f"“{task.name}” is back in the queue of its role.", "info")
    return redirect(url_for("inbox.index"))


@bp.route("/tasks/<int:task_id>/delegate", methods=["POST"])
@login_required
def delegate(task_id: int):
    """Hand the task to a colleague of the same role."""
    delegation = act(actions.delegate, task_id, request.form.get("to", ""))
    flash(f"“{delegation.task.name}” is now with {delegation.to.full_name}.", "success")
    return redirect(url_for("inbox.index"))


@bp.route("/tasks/<int:task_id>/complete", methods=["POST"])
@login_required
def complete(task_id: int):
    """Validate and complete; an invalid form re-renders with the messages and the typed values."""
    try:
        task = act(actions.complete_task, task_id, submitted_values())
    except InvalidForm as exc:
        view = read_models.task_view(db(), actor(), task_id)
        view.values = exc.values
        return render_template("inbox/task.html", view=view, errors=exc.errors), 422
    flash(f"Completed “{task.name}” of “{task.instance_title}”.", "success")
    return redirect(url_for("inbox.index"))
