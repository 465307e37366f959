"""The dashboard in Chromium: its charts draw on their canvases, the bottleneck diagram carries its overlays
(waiting-time colours on the tasks, path counts on the flows), and the page fits a phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from engine.db import ProcessInstance
from workflows.demo import Player

AUDIT = {"dealer_name": "Oakline", "store_name": "Hamburg City", "region": "North", "audit_date": "2026-12-03"}
OK = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true", "display_ok": "true"}
LOOP = [
    ("amy", {**OK, "display_ok": "false", "findings": "Old display"}),
    ("dora", {"rectification_deadline": "2026-12-20", "rectification_actions": "New display"}),
    ("amy", OK),
    ("mark", {"audit_rating": "B"}),
]
STRAIGHT = [("amy", OK), ("mark", {"audit_rating": "A"})]


@pytest.fixture
def audits(in_database) -> None:
    """Two finished dealer audits (one through the rectification loop) and one waiting for its inspection."""

    def play(session) -> str:
        player = Player(session)
        for n, steps in enumerate((LOOP, STRAIGHT, [])):
            case = player.start("mark", "dealer_audit", {**AUDIT, "title": f"Audit {n}"})
            for username, values in steps:
                player.complete(username, case, values)
        return session.scalar(select(ProcessInstance.status).where(ProcessInstance.title == "Audit 1"))

    assert in_database(play) == "completed"


def test_charts_and_bottlenecks_render(new_page, live_server, login, audits):
    page = new_page()
    login(page, live_server, "mark")
    page.get_by_role("link", name="Dashboard").click()
    filters = page.locator("#dashboard-filters")
    filters.locator('select[name="process"]').select_option("dealer_audit")
    filters.get_by_role("button", name="Show").click()

    for chart in ("cycle", "weekly-started", "weekly-finished", "overdue-roles", "employees"):
        expect(page.locator(f'canvas[data-chart="{chart}"]')).to_have_attribute("data-rendered", "true")
    expect(page.locator("#table-cases tbody tr")).to_have_count(1)
    expect(page.locator("#table-cases tbody td").nth(2)).to_have_text("2")  # finished

    diagram = page.locator("#bottleneck-diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    for element in ("inspect_dealer", "rectify_findings", "recheck_dealer", "close_audit"):
        expect(page.locator(f'g.djs-element.df-wait-fast[data-element-id="{element}"]')).to_have_count(1)
    overlays = page.locator('.djs-overlays[data-container-id="Flow_gw_compliant_to_close_audit"] .df-overlay-flow')
    expect(overlays).to_have_text("2")
    expect(page.locator('.djs-overlays[data-container-id="Flow_gw_compliant_to_rectify_findings"] .df-overlay-flow')
           ).to_have_text("1")
    expect(page.locator('.djs-overlays[data-container-id="Flow_start_to_inspect_dealer"] .df-overlay-flow')
           ).to_have_text("3")
    expect(page.locator('.djs-overlays[data-container-id="inspect_dealer"] .df-overlay-wait')).to_contain_text("1 open")


def test_dashboard_fits_a_phone(new_page, live_server, login, audits):
    page = new_page()
    login(page, live_server, "alice")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(live_server + "/dashboard")
    expect(page.locator('canvas[data-chart="cycle"]')).to_have_attribute("data-rendered", "true")
    expect(page.locator("#bottleneck-diagram")).to_have_attribute("data-rendered", "true")
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner
    assert page.locator("#table-employees thead").evaluate("e => getComputedStyle(e).display") == "none"  # cards
