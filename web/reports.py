"""Monthly statistics pages."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import login_required

from engine import reports
from engine.clock import utcnow

from .database import db
from .security import actor

bp = Blueprint("reports", __name__)


@bp.route("/reports/<key>")
@login_required
def monthly(key: str):
    """Cases of one process started in a month (``?month=YYYY-MM``, default this month)."""
    year, month = _month_arg(request.args.get("month"))
    stats = reports.monthly_statistics(db(), actor(), key, year, month)
    return render_template("reports/monthly.html", stats=stats)


def _month_arg(text: str | None) -> tuple[int, int]:
    if not text:
        now = utcnow()
        return now.year, now.month
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError:
        abort(400, "Give the month as YYYY-MM.")
    if not (1 <= month <= 12 and 2000 <= year <= 2100):
        abort(400, "Give the month as YYYY-MM.")
    return year, month
