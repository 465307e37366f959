"""The KPI dashboard: one engine call per page, per CSV download and per diagram."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_login import login_required

from engine import dashboard
from engine.errors import InvalidForm

from .database import db
from .security import actor

bp = Blueprint("dashboard", __name__)


@bp.route("/dashboard")
@login_required
def index():
    """The figures the user may see, for the filters of the query string (``start``, ``end``, ``process``, ``role``)."""
    try:
        filters = dashboard.parse_filters(request.args)
    except InvalidForm as exc:
        filters = dashboard.parse_filters({})
        return _page(dashboard.dashboard(db(), actor(), filters), exc.errors, exc.values), 422
    return _page(dashboard.dashboard(db(), actor(), filters), {}, request.args)


def _page(board: dashboard.Dashboard, errors: dict, values: Any) -> str:
    return render_template("dashboard/index.html", board=board, tables=dashboard.tables(board),
                           charts=dashboard.chart_data(board), diagram_process=dashboard.diagram_process(board),
                           errors=errors, values=values)


@bp.route("/dashboard/<name>.csv")
@login_required
def csv(name: str):
    """One figure's numbers, for the same filters as the page."""
    try:
        filters = dashboard.parse_filters(request.args)
    except InvalidForm as exc:
        abort(400, " ".join(exc.errors.values()))
    if name not in dashboard.TABLE_PARTS:
        abort(404)
    table = dashboard.tables(dashboard.dashboard(db(), actor(), filters, dashboard.TABLE_PARTS[name]))[name]
    return Response(dashboard.to_csv(table), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="deptflow-{name}.csv"'})


@bp.route("/dashboard/diagram/<key>.bpmn")
@login_required
def diagram(key: str):
    """The latest diagram of a process, for the bottleneck view."""
    return Response(dashboard.diagram_xml(db(), actor(), key), mimetype="application/xml; charset=utf-8")
