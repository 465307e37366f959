"""The clerk's monthly statistics of engineering-drawing applications: now the dashboard's figure
"applications per month by status"; the old address leads there."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest

from engine import actions, clock, dashboard, reports
from engine.errors import NotAllowed, NotFound

APPLICATION = {"customer_name": "Hotel Aurora", "project_name": "Lobby", "drawings_needed_by": "2027-01-31",
               "product_lines": "Chairs"}


@pytest.fixture
def months(session, user):
    """Applications started in Oct (1) and Nov 2026 (2, one of them by sara)."""
    moments = [datetime(2026, 10, 30, 9), datetime(2026, 11, 2, 10), datetime(2026, 11, 20, 16)]
    starters = ["steve", "steve", "sara"]
    try:
        for n, (moment, starter) in enumerate(zip(moments, starters, strict=True)):
            clock.set_clock(lambda moment=moment: moment)
            actions.start_process(session, user(starter), "engineering_drawing_application",
                                  {**APPLICATION, "title": f"Application {n}"})
        session.commit()
    finally:
        clock.set_clock(None)


def test_counts_per_month_and_status(session, user, months):
    filters = dashboard.Filters(date(2025, 12, 1), date(2026, 11, 30), process="engineering_drawing_application")
    board = dashboard.dashboard(session, user("clara"), filters)
    assert board.forms.drawings == {("2026-10", "running"): 1, ("2026-11", "running"): 2}
    rows = dashboard.tables(board)["drawings"].rows
    assert len(rows) == 12 and rows[0] == ["2025-12", 0, 0] and rows[-2:] == [["2026-10", 1, 1], ["2026-11", 2, 2]]


def test_only_owner_and_management_see_statistics(session, user, months):
    with pytest.raises(NotAllowed):
        reports.statistics_process(session, user("steve"), "engineering_drawing_application")
    with pytest.raises(NotFound):
        reports.statistics_process(session, user("grace"), "nope")
    assert reports.statistics_process(session, user("grace"), "engineering_drawing_application").owner_role == "clerk"
    filters = dashboard.Filters(date(2026, 10, 1), date(2026, 11, 30))
    assert dashboard.dashboard(session, user("steve"), filters).forms.drawings == {}


def test_statistics_address_leads_to_the_dashboard(login_as):
    clara = login_as("clara")
    assert "Dashboard" in clara.get("/").get_data(as_text=True)
    steve = login_as("steve")
    steve.post("/processes/engineering_drawing_application/start", data={**APPLICATION, "title": "Lobby drawings"})
    this_month = clock.utcnow().strftime("%Y-%m")
    response = clara.get(f"/reports/engineering_drawing_application?month={this_month}")
    assert response.status_code == 302
    assert "/dashboard?process=engineering_drawing_application&start=" in response.location
    page = clara.get(response.location).get_data(as_text=True)
    assert re.search(rf"<td data-label=\"Month\">{this_month}</td>\s*<td data-label=\"running\">1</td>", page)
    assert steve.get("/reports/engineering_drawing_application").status_code == 403
    assert clara.get("/reports/engineering_drawing_application?month=2026-13").status_code == 400
