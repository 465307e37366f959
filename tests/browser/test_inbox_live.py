"""The team inbox in Chromium (issue 18): an open inbox follows what colleagues do without a reload,
a manager reassigns ticked tasks, filters and saved filters with their counts, and the filter sidebar
on a phone.

Live updates poll a change token every few seconds; the tests wait on the page's DOM (Playwright's
auto-waiting assertions), never on a clock. A marker set on ``window`` proves the page was not reloaded.
"""

from __future__ import annotations

from playwright.sync_api import Page, expect

PHONE = {"width": 375, "height": 800}
TARGETS = {"target_year": "2027", "target_period": "year"}


def _rows(page: Page, table: str, title: str):
    return page.locator(f"#{table} tr[data-task-id]").filter(has_text=title)


def _count(page: Page, filter_key: str):
    return page.locator(f'#filter-list li[data-filter="{filter_key}"] .count')


def _mark(page: Page) -> None:
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"


def test_an_open_inbox_follows_a_new_task_and_a_colleagues_claim(new_page, live_server, login, start_case):
    steve, sara = new_page(), new_page()
    login(steve, live_server, "steve")
    login(sara, live_server, "sara")
    expect(steve.locator("#available-empty")).to_be_visible()
    expect(_count(steve, "unassigned")).to_have_text("0")
    _mark(steve)

    # Sam starts a target setting: a forecast for the sales representatives arrives in Steve's open inbox
    start_case("sam", "sales_target_setting", {**TARGETS, "title": "Targets East 2027"})
    expect(_rows(steve, "available", "Targets East 2027")).to_have_count(1)
    expect(_count(steve, "unassigned")).to_have_text("1")
    expect(steve.locator("#count-available")).to_have_text("1")
    expect(steve.locator("#unread-count")).to_have_text("1")  # the bell: "New task …"
    _not_reloaded(steve)

    # Sara claims it in her browser: it leaves Steve's queue
    sara.goto(live_server + "/")
    _rows(sara, "available", "Targets East 2027").get_by_role("button", name="Claim").click()
    expect(sara.locator("p.flash")).to_contain_text("You claimed")
    expect(_rows(steve, "available", "Targets East 2027")).to_have_count(0)
    expect(steve.locator("#available-empty")).to_be_visible()
    expect(_count(steve, "unassigned")).to_have_text("0")
    _not_reloaded(steve)


def test_a_manager_reassigns_ticked_tasks_and_the_assignee_sees_them_arrive(new_page, live_server, login,
                                                                            start_case):
    for title in ("Targets North 2027", "Targets East 2027", "Targets South 2027"):
        start_case("sam", "sales_target_setting", {**TARGETS, "title": title})
    steve, sam = new_page(), new_page()
    login(steve, live_server, "steve")
    login(sam, live_server, "sam")
    expect(steve.locator("#assigned-empty")).to_be_visible()
    _mark(steve)

    sam.locator('#filter-list li[data-filter="team-sales_rep"] a').click()
    expect(sam.locator("#filtered tr[data-task-id]")).to_have_count(3)
    expect(_count(sam, "team-sales_rep")).to_have_text("3")
    for title in ("Targets North 2027", "Targets East 2027"):
        _rows(sam, "filtered", title).get_by_role("checkbox").check()
    sam.get_by_label("To").select_option(label="Steve Hall")
    sam.get_by_label("Reason").fill("Steve covers the north and east this quarter")
    sam.get_by_role("button", name="Reassign").click()
    expect(sam.locator("p.flash").first).to_have_text("Reassigned 2 of 2 tasks.")

    expect(steve.locator("#assigned tr[data-task-id]")).to_have_count(2)
    expect(_rows(steve, "assigned", "Targets North 2027")).to_have_count(1)
    expect(_count(steve, "mine")).to_have_text("2")
    _not_reloaded(steve)


def test_filters_search_and_a_saved_filter_with_its_count(new_page, live_server, login, start_case):
    for title in ("Targets North 2027", "Targets East 2027"):
        start_case("sam", "sales_target_setting", {**TARGETS, "title": title})
    page = new_page()
    login(page, live_server, "steve")
    page.get_by_text("Filter and search").click()
    page.get_by_label("Case title or key").fill("east")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#filtered tr[data-task-id]")).to_have_count(1)
    expect(page.locator("#count-filtered")).to_have_text("1")
    page.get_by_label("Save these criteria as").fill("East region")
    page.get_by_role("button", name="Save filter").click()
    expect(page.locator("p.flash")).to_have_text("Saved the filter “East region”.")
    saved = page.locator("#filter-list li").filter(has_text="East region")
    expect(saved.locator(".count")).to_have_text("1")
    expect(saved.locator("a")).to_have_attribute("aria-current", "page")

    _mark(page)  # a new matching case raises the saved filter's count on the open page
    start_case("sam", "sales_target_setting", {**TARGETS, "title": "Targets East 2028"})
    expect(saved.locator(".count")).to_have_text("2")
    expect(page.locator("#filtered tr[data-task-id]")).to_have_count(2)
    _not_reloaded(page)


def test_the_filter_sidebar_fits_a_phone(new_page, live_server, login, start_case):
    for title in ("Targets North 2027 with a long title for a narrow phone screen", "Targets East 2027"):
        start_case("sam", "sales_target_setting", {**TARGETS, "title": title})
    page = new_page()
    login(page, live_server, "sam")
    page.set_viewport_size(PHONE)
    wide = []
    for path in ("/", "/?filter=team-sales_rep", "/?text=targets&due=week&priority=high", "/?filter=follow-up"):
        page.goto(live_server + path)
        if "text=" in path:
            expect(page.locator("details.filter-form")).to_have_attribute("open", "")
        expect(page.locator("#filter-list")).to_be_visible()
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if scroll > inner:
            wide.append(f"{path}: {scroll} px in a {inner} px window")
    assert not wide, "wider than the phone: " + "; ".join(wide)
