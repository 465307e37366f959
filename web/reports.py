"""The former monthly statistics page: its address now leads to the dashboard's figures of the process."""

from __future__ import annotations

from calendar import monthrange
from datetime import date

from flask import Blueprint, abort, redirect, request, url_for
from flask_login import login_required

from engine import reports
from engine.clock import utcnow

from .database import db
from .security import actor

bp = Blueprint("reports", __name__)


@bp.route("/reports/<key>")
@login_required
def monthly(key: str):
    """``?month=YYYY-MM``: that month on the dashboard; without it, the last twelve months."""
    reports.statistics_process(db(), actor(), key)
    start, end = _range(request.args.get("month"))
    return redirect(url_for("dashboard.index", process=key, start=start.isoformat(), end=end.isoformat(),
                            _anchor="forms"))


def _range(text: str | None) -> tuple[date, date]:
    if not text:
        today = utcnow().date()
        year, month = (today.year, today.month - 11) if today.month > 11 else (today.year - 1, today.month + 1)
        return date(year, month, 1), today
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError:
        abort(400, "Give the month as YYYY-MM.")
    if not (1 <= month <= 12 and 2000 <= year <= 2100):
        abort(400, "Give the month as YYYY-MM.")
    return date(year, month, 1), date(year, month, monthrange(year, month)[1])
