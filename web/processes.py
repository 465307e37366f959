"""Start a process, follow my requests, look at a case."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from engine import actions, case_actions, read_models
from engine.errors import InvalidForm

from .database import act, db
from .forms import submitted_values
from .security import actor

bp = Blueprint("processes", __name__)


@bp.route("/processes")
@login_required
def index():
    """The processes my roles may start."""
    return render_template("processes/index.html", processes=actions.startable_processes(db(), actor()))


@bp.route("/processes/<key>/start")
@login_required
def start(key: str):
    """The start form; a valid submission starts a case and shows it."""
    view = read_models.start_form(db(), actor(), key)
    return render_template("processes/start.html", view=view, errors={})


@bp.route("/processes/<key>/start", methods=["POST"], endpoint="start_post")
@login_required
def start_post(key: str):
    try:
        case = act(actions.start_process, key, submitted_values())
    except InvalidForm as exc:
        view = read_models.start_form(db(), actor(), key)
        view.values = exc.values
        return render_template("processes/start.html", view=view, errors=exc.errors), 422
    flash(f"Started “{case.title}”.", "success")
    return redirect(url_for("processes.instance", instance_id=case.id))


@bp.route("/requests")
@login_required
def requests():
    """Cases I started: status, current step, who holds it."""
    return render_template("processes/requests.html", rows=read_models.my_requests(db(), actor()))


@bp.route("/instances/<int:instance_id>")
@login_required
def instance(instance_id: int):
    """One case: its data, tasks and event log."""
    return _instance_page(instance_id, {}, {})


def _instance_page(instance_id: int, errors: dict[str, str], values: dict[str, str], status: int = 200):
    detail = read_models.instance_detail(db(), actor(), instance_id)
    return render_template("processes/instance.html", detail=detail, actions=detail.actions, errors=errors,
                           values=values), status


_CASE_ACTIONS = {"cancel": case_actions.cancel, "suspend": case_actions.suspend, "resume": case_actions.resume,
                 "retry": case_actions.retry}


@bp.route("/instances/<int:instance_id>/<any(cancel, suspend, resume, retry):action>", methods=["POST"])
@login_required
def instance_action(instance_id: int, action: str):
    """Cancel, suspend, resume or retry a case, with the reason given."""
    try:
        case = act(_CASE_ACTIONS[action], instance_id, request.form.get("reason", ""))
    except InvalidForm as exc:
        return _instance_page(instance_id, exc.errors, exc.values, 422)
    flash(f"“{case.title}” is {case.status}.", "success")
    return redirect(url_for("processes.instance", instance_id=instance_id))
