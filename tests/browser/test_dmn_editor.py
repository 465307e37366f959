"""Process owners in Chromium: the decisions page lists a published DMN file's decisions; the decision editor
(camunda-dmn-js) renders a decision table, and publishing from it makes the next version of each decision."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

DMN = (Path(__file__).parent.parent / "data" / "dmn" / "expense_decisions.dmn").read_text()


def test_owner_opens_a_decision_table_and_publishes_the_next_version(new_page, live_server, login, in_database):
    from engine import decisions

    in_database(lambda session: decisions.deploy_decisions(session, None, DMN))
    owner: Page = new_page()
    login(owner, live_server, "owen")
    owner.goto(f"{live_server}/modeler")
    owner.get_by_role("link", name="Decision tables").click()
    expect(owner).to_have_url(f"{live_server}/modeler/decisions")
    row = owner.locator("tr[data-decision='expense-approver']")
    expect(row).to_contain_text("Expense approver")
    expect(row).to_contain_text("v1")
    row.get_by_role("link", name="Open in the editor").click()
    expect(owner).to_have_url(f"{live_server}/modeler/decisions/expense-approver")

    editor = owner.locator("#dmn-editor")
    expect(editor).to_have_attribute("data-ready", "true")
    table = owner.locator("#canvas .tjs-table")
    expect(table).to_be_visible()
    # the page's decision opens; the file's other decision and its requirements diagram are a click away
    expect(owner.locator("#canvas .decision-table-name")).to_contain_text("Expense approver")
    expect(table).to_contain_text("Approver role")
    expect(table).to_contain_text('"sales_manager"')
    expect(owner.locator("#canvas .hit-policy")).to_contain_text("Collect")
    owner.locator("#views").get_by_role("link", name="Table: Expense classification").click()
    expect(owner.locator("#canvas .decision-table-name")).to_contain_text("Expense classification")
    expect(table).to_contain_text("[250..1000]")
    owner.locator("#views").get_by_role("link", name="Requirements diagram").click()
    expect(owner.locator("#canvas .djs-element[data-element-id='expense-approver']")).to_be_visible()

    owner.get_by_label("Note for this version (optional)").fill("Saved from the editor")
    owner.get_by_role("button", name="Publish").click()
    expect(owner.locator("#status")).to_have_text(
        "Published: expense-classification version 2, expense-approver version 2.")

    def versions(session):
        return [(d.version, d.note) for d in decisions.versions_of(session, "expense-approver")]

    assert in_database(versions) == [(2, "Saved from the editor"), (1, "")]
    owner.reload()
    expect(owner.locator("#versions tr[data-version='2']")).to_contain_text("Saved from the editor")


def test_an_employee_cannot_open_the_decisions(new_page, live_server, login):
    page: Page = new_page()
    login(page, live_server, "cathy")
    response = page.goto(f"{live_server}/modeler/decisions")
    assert response is not None and response.status == 403
