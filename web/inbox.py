"""The inbox and the task page: filters, claim, unclaim, delegate, reassign, follow up, complete."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine import actions, notify, read_models, task_filters
from engine.errors import InvalidForm
from engine.task_filters import TaskFilter

from .database import act, db
from .forms import submitted_values
from .params import page_arg
from .security import actor

bp = Blueprint("inbox", __name__)

#: the query-string names of a filter's criteria
CRITERIA = tuple(TaskFilter.__dataclass_fields__)


@bp.route("/")
@login_required
def index():
    """My tasks and my roles' open tasks, a page of each (``?mine=2&queue=3``); or the tasks of a filter:
    built-in (``?filter=overdue``), saved (``?saved=7``) or ad hoc (``?due=week&text=east``), ``?page=2``."""
    return _inbox_page()


def _inbox_page(errors: dict[str, str] | None = None, bulk: dict[str, Any] | None = None, status: int = 200,
                args: MultiDict | None = None):
    """The inbox with the filter of ``args`` (the query string; after a refused POST, that of the page the
    form was on, so the person sees the same list with their input and its messages)."""
    args = request.args if args is None else args
    values = {name: args.get(name, "") for name in CRITERIA if args.get(name)}
    if request.method == "POST":  # a refused "save filter": the criteria came with the form
        values |= {name: request.form.get(name, "") for name in CRITERIA if request.form.get(name)}
    kwargs = {"key": args.get("filter", "").strip(), "saved_id": _id(args.get("saved")), "values": values,
              "page": page_arg("page"), "assigned_page": page_arg("mine"), "available_page": page_arg("queue")}
    try:
        page = task_filters.inbox_page(db(), actor(), **kwargs)
    except InvalidForm as exc:  # the criteria stay in the form, each with its message
        page = task_filters.inbox_page(db(), actor(), assigned_page=kwargs["assigned_page"],
                                       available_page=kwargs["available_page"])
        errors, values, status = {**exc.errors, **(errors or {})}, exc.values, 422
    return render_template("inbox/index.html", page=page, inbox=page.sections, values=values, errors=errors or {},
                           bulk=bulk or {}, tf=task_filters, next_url=_back() if request.method == "POST" else
                           request.full_path.rstrip("?")), status


def _id(text: str | None) -> int | None:
    """A saved filter's id from a query string: a mistyped one is no filter of anyone's (404)."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        abort(404)
    return int(text)


@bp.route("/inbox/changes")
@login_required
def changes():
    """The inbox's change token (``ETag``; 304 when the browser's copy is current) and the unread count:
    an open page polls this instead of the page, and reloads its list only when the token moved."""
    token = task_filters.change_token(db(), actor())
    etag = f'"{token}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = Response(status=304)
    else:
        response = jsonify(token=token, unread=notify.unread_count(db(), actor()))
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache, private"
    return response


@bp.route("/filters", methods=["POST"])
@login_required
def save_filter():
    """Save the criteria of the form under a name (a name already used gets the new criteria)."""
    try:
        criteria = TaskFilter.parse(request.form)
        saved = act(task_filters.save_filter, request.form.get("name", ""), criteria)
    except InvalidForm as exc:
        return _inbox_page(errors=exc.errors, status=422, args=MultiDict())
    flash(f"Saved the filter “{saved.name}”.", "success")
    return redirect(url_for("inbox.index", saved=saved.id))


@bp.route("/filters/<int:filter_id>/delete", methods=["POST"])
@login_required
def delete_filter(filter_id: int):
    name = act(task_filters.delete_filter, filter_id)
    flash(f"Deleted the filter “{name}”.", "info")
    return redirect(url_for("inbox.index"))


@bp.route("/tasks/reassign", methods=["POST"])
@login_required
def reassign():
    """A manager hands the chosen tasks to a person or back to the queue; says which ones stayed and why."""
    ids = [int(v) for v in request.form.getlist("task") if v.isascii() and v.isdigit() and len(v) < 10]
    to = request.form.get("to", "").strip()
    try:
        results = act(actions.reassign, ids, to or None, request.form.get("reason", ""))
    except InvalidForm as exc:
        bulk = {"errors": exc.errors, "to": to, "reason": request.form.get("reason", ""), "tasks": set(ids)}
        return _inbox_page(bulk=bulk, status=422, args=MultiDict(parse_qsl(urlsplit(_back()).query)))
    done = [r for r in results if r.ok]
    if done:
        flash(f"Reassigned {len(done)} of {len(results)} tasks.", "success")
    for r in results:
        if not r.ok:
            flash(f"“{r.name}” was not reassigned: {r.error}", "error")
    return redirect(_back())


def _back() -> str:
    """The inbox view the form was sent from (a local path only)."""
    target = request.form.get("next", "")
    return target if target.startswith("/") and not target.startswith("//") else url_for("inbox.index")


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


@bp.route("/tasks/<int:task_id>/follow-up", methods=["POST"])
@login_required
def follow_up(task_id: int):
    """Put the task aside until a day (empty: back now); until then it waits under "Follow-up"."""
    text = request.form.get("follow_up", "").strip()
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        flash(f"“{text[:40]}” is not a date; choose a day after today.", "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    try:
        task = act(actions.set_follow_up, task_id, day)
    except InvalidForm as exc:
        flash(f"“{text}”: {exc.errors['follow_up']}", "error")
        return redirect(url_for("inbox.task", task_id=task_id))
    if day:
        flash(f"“{task.name}” waits under Follow-up until {day:%d %B %Y}.", "info")
    else:
        flash(f"“{task.name}” is back among your tasks.", "info")
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
