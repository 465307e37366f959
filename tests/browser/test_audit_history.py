"""An auditor reads a finished dealer audit: the path taken on the diagram and the timeline."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from engine.db import ProcessInstance
from workflows.demo import Player

AUDIT = {"title": "Audit Oakline Hamburg", "dealer_name": "Oakline", "store_name": "Hamburg City",
         "region": "North", "audit_date": "2026-12-03"}
OK = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true", "display_ok": "true"}
STEPS = [
    ("amy", {**OK, "display_ok": "false", "findings": "Old display"}),
    ("dora", {"rectification_deadline": "2026-12-20", "rectification_actions": "New display"}),
    ("amy", OK),
    ("mark", {"audit_rating": "B"}),
]


@pytest.fixture
def finished_audit(in_database) -> int:
    def play(session) -> int:
        player = Player(session)
        case = player.start("mark", "dealer_audit", AUDIT)
        for username, values in STEPS:
            player.complete(username, case, values)
        assert session.get(ProcessInstance, case).status == "completed"
        return case

    return in_database(play)


def test_auditor_sees_the_path_and_the_timeline(new_page, live_server, login, finished_audit):
    page = new_page()
    login(page, live_server, "alice")
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Process").select_option("dealer_audit")
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result-total")).to_have_text("1")
    page.get_by_role("link", name=AUDIT["title"]).click()

    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    for element in ("inspect_dealer", "rectify_findings", "recheck_dealer", "close_audit", "gw_compliant"):
        expect(page.locator(f'g.djs-element.df-completed[data-element-id="{element}"]')).to_have_count(1)
    expect(page.locator("g.djs-element.df-active")).to_have_count(0)
    assert page.locator("g.djs-connection.df-flow-taken").count() >= 6

    timeline = page.locator("#timeline > li")
    expect(timeline.first).to_contain_text("started")
    expect(page.locator('#timeline > li[data-kind="completed"]')).to_have_count(4)
    expect(page.locator('#timeline > li[data-kind="gateway_decision"]')).to_have_count(2)
    expect(page.locator('#timeline > li[data-kind="ended"]')).to_have_count(1)
    rework = page.locator('#timeline > li[data-kind="completed"]').first
    expect(rework).to_contain_text("Amy Wu")
    expect(rework.locator("table.changes")).to_contain_text("Product display meets the standard")
    expect(page.locator("#instance-status")).to_have_text("completed")


def test_employee_is_refused_a_case_they_took_no_part_in(new_page, live_server, login, finished_audit):
    page = new_page()
    login(page, live_server, "paula")
    response = page.goto(f"{live_server}/history/{finished_audit}")
    assert response.status == 403
    expect(page.locator("article.error-page h1")).to_contain_text("403")
    participant = new_page()
    login(participant, live_server, "dora")
    assert participant.goto(f"{live_server}/history/{finished_audit}").status == 200
    expect(participant.locator("#diagram")).to_have_attribute("data-rendered", "true")
