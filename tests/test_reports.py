"""The clerk's monthly statistics of engineering-drawing applications."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from engine import actions, clock, reports
from engine.errors import NotAllowed

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


def test_counts_per_month_and_the_months_cases(session, user, months):
    stats = reports.monthly_statistics(session, user("clara"), "engineering_drawing_application", 2026, 11)
    assert stats.month == "2026-11" and stats.total == 2
    assert [i.title for i in stats.instances] == ["Application 1", "Application 2"]
    assert stats.by_status == {"running": 2}
    assert dict(stats.per_month)["2026-10"] == 1 and dict(stats.per_month)["2026-11"] == 2
    assert stats.per_month[0][0] == "2025-12" and len(stats.per_month) == 12
    assert [t.element_id for t in stats.open_tasks[stats.instances[0].id]] == ["register_application"]
    january = reports.monthly_statistics(session, user("clara"), "engineering_drawing_application", 2027, 1)
    assert january.total == 0 and dict(january.per_month)["2026-11"] == 2


def test_only_owner_and_management_see_statistics(session, user, months):
    with pytest.raises(NotAllowed):
        reports.monthly_statistics(session, user("steve"), "engineering_drawing_application", 2026, 11)
    assert reports.monthly_statistics(session, user("grace"), "engineering_drawing_application", 2026, 11).total == 2


def test_statistics_page(login_as):
    clara = login_as("clara")
    page = clara.get("/").get_data(as_text=True)
    assert "Drawing statistics" in page
    steve = login_as("steve")
    assert "Drawing statistics" not in steve.get("/").get_data(as_text=True)
    steve.post("/processes/engineering_drawing_application/start", data={**APPLICATION, "title": "Lobby drawings"})
    this_month = clock.utcnow().strftime("%Y-%m")
    page = clara.get(f"/reports/engineering_drawing_application?month={this_month}").get_data(as_text=True)
    assert re.search(r'id="month-total">1<', page) and "Lobby drawings" in page and "Comprehensive clerk" in page
    assert steve.get("/reports/engineering_drawing_application").status_code == 403
    assert clara.get("/reports/engineering_drawing_application?month=2026-13").status_code == 400
    assert clara.get("/reports/nope").status_code == 404
