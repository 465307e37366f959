"""Every page fits an iPhone SE (375 px): no page is wider than the window, the menu folds, tables stack."""

from __future__ import annotations

from playwright.sync_api import Page, expect

PHONE = {"width": 375, "height": 800}
DRAWING = "engineering_drawing_application"
DRAWINGS = {"title": "Drawings for Hotel Aurora with a rather long case title to wrap", "customer_name": "Hotel Aurora",
            "project_name": "Lobby refit", "drawings_needed_by": "2027-01-31",
            "product_lines": "Lounge chairs, side tables and a very long list of product lines", "quantity": "40"}
COMPLAINT = {"title": "Wobbly chair legs", "customer_name": "Café Nord", "customer_contact": "nord@example.com",
             "product": "Chair", "problem_type": "quality", "description": "Two chairs wobble."}


def _width(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _phone_page(new_page, live_server: str, login, username: str) -> Page:
    page = new_page()
    login(page, live_server, username)
    page.set_viewport_size(PHONE)
    return page


def test_every_page_fits_a_phone(new_page, live_server, login, start_case):
    case_id, (task_id,) = start_case("steve", DRAWING, DRAWINGS)
    start_case("steve", DRAWING, {**DRAWINGS, "title": "Second drawings"})
    visits = {
        "clara": [("inbox", "/"), ("task page", f"/tasks/{task_id}"), ("notifications", "/notifications"),
                  ("drawing statistics", f"/reports/{DRAWING}")],
        "steve": [("case page", f"/instances/{case_id}"), ("my requests", "/requests"),
                  ("start form", f"/processes/{DRAWING}/start"), ("case history", f"/history/{case_id}")],
        "alice": [("audit search", f"/audit?process_key={DRAWING}"), ("auditor's case history", f"/history/{case_id}")],
        "owen": [("modeler list", "/modeler"), ("process page", f"/modeler/{DRAWING}"),
                 ("modeler", f"/modeler/{DRAWING}/edit")],
        "admin": [("admin users", "/admin/users")],
    }
    widths, wide = {}, []
    for username, pages in visits.items():
        page = _phone_page(new_page, live_server, login, username)
        for name, path in pages:
            response = page.goto(live_server + path)
            assert response is not None and response.ok, (name, path)
            if path.endswith("/edit"):
                expect(page.locator("#modeler")).to_have_attribute("data-ready", "true")
            elif path.startswith("/history/"):
                expect(page.locator("#diagram")).to_have_attribute("data-rendered", "true")
            widths[name] = scroll, inner = _width(page)
            if scroll > inner:
                wide.append(f"{name} ({path}) as {username}: {scroll} px in a {inner} px window")
    print(widths)
    assert not wide, "wider than the phone: " + "; ".join(wide)


def test_the_menu_folds_and_opens_on_a_phone(new_page, live_server, login):
    page = _phone_page(new_page, live_server, login, "mark")
    links = page.locator("#nav-links")
    expect(links).to_be_hidden()
    page.locator(".nav-toggle-label").click()
    expect(links).to_be_visible()
    links.get_by_role("link", name="My requests").click()
    expect(page).to_have_url(f"{live_server}/requests")
    page.wait_for_load_state("load")  # the URL changes when the new page commits, before its stylesheets apply
    scroll, inner = _width(page)
    assert scroll <= inner


def test_inbox_rows_are_cards_on_a_phone(new_page, live_server, login, start_case):
    start_case("steve", DRAWING, DRAWINGS)
    page = _phone_page(new_page, live_server, login, "clara")
    row = page.locator("#available tr[data-task-id]")
    expect(row).to_have_count(1)
    expect(page.locator("#available thead")).to_be_hidden()
    label = row.locator("td[data-label='Priority']").evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Priority"'
    expect(row.locator("td[data-label='Priority'] span")).to_have_attribute("title", "Priority 50 of 100")


def test_task_page_is_one_column_on_a_phone(new_page, live_server, login, start_case):
    _case, (task_id,) = start_case("steve", DRAWING, DRAWINGS)
    page = _phone_page(new_page, live_server, login, "clara")
    page.goto(f"{live_server}/tasks/{task_id}")
    page.get_by_role("button", name="Claim").click()
    form, data = page.locator("form.task-form"), page.locator(".task-grid > aside")
    expect(form).to_be_visible()
    assert form.bounding_box()["y"] + form.bounding_box()["height"] <= data.bounding_box()["y"] + 1
    unclaim = page.get_by_role("button", name="Unclaim").bounding_box()
    first_label = form.locator("label").first.bounding_box()
    assert first_label["y"] >= unclaim["y"] + unclaim["height"] + 8  # the button no longer touches the label


def test_statistics_fit_a_desktop(new_page, live_server, login, start_case):
    start_case("steve", DRAWING, DRAWINGS)
    page = new_page()  # 1280 × 800
    login(page, live_server, "clara")
    page.goto(f"{live_server}/reports/{DRAWING}")  # the drawings figure of the dashboard
    fits = page.evaluate("""() => {
        const table = document.getElementById('table-drawings'), main = document.querySelector('main');
        const box = main.getBoundingClientRect(), style = getComputedStyle(main);
        return table.getBoundingClientRect().right <= box.right - parseFloat(style.paddingRight) + 0.5
            && table.scrollWidth <= table.clientWidth;
    }""")
    assert fits
    scroll, inner = _width(page)
    assert scroll <= inner
