"""A long queue in pages, and a starter following their own case, in Chromium."""

from __future__ import annotations

from playwright.sync_api import expect

PROCESS = "engineering_drawing_application"


def _drawing(i: int) -> dict[str, str]:
    return {"title": f"Drawings {i:02d}", "customer_name": "Hotel Aurora", "project_name": "Lobby",
            "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "4"}


def test_a_long_queue_comes_in_pages(new_page, live_server, login, start_case):
    for i in range(53):
        start_case("steve", PROCESS, _drawing(i))
    page = new_page()
    login(page, live_server, "clara")
    expect(page.locator("#count-available")).to_have_text("53")
    rows = page.locator("#available tr[data-task-id]")
    expect(rows).to_have_count(50)
    pager = page.locator("#available-pager")
    expect(pager).to_contain_text("1–50 of 53")
    pager.get_by_role("link", name="Later").click()
    expect(pager).to_contain_text("51–53 of 53")
    expect(rows).to_have_count(3)
    pager.get_by_role("link", name="Earlier").click()
    expect(rows).to_have_count(50)
    first_page_titles = set(rows.locator("td:nth-child(2)").all_inner_texts())
    assert len(first_page_titles) == 50  # fifty different cases: nothing shown twice


def test_the_starter_follows_the_task_of_their_case(new_page, live_server, login, start_case):
    case_id, _tasks = start_case("steve", PROCESS, _drawing(1))
    page = new_page()
    login(page, live_server, "steve")
    page.goto(f"{live_server}/instances/{case_id}")
    page.locator("#open-tasks").get_by_role("link").click()
    expect(page.locator("#waiting")).to_contain_text("Waiting for someone of")
    expect(page.get_by_role("button", name="Claim")).to_have_count(0)
    expect(page.get_by_role("button", name="Complete")).to_have_count(0)
