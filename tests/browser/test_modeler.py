"""Process owners in Chromium: rename a task in the modeler's properties panel, save, publish; new cases get
the new name while running ones keep theirs. The report's element ids select elements; employees get 403."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

PROCESS = "customer_complaint"
TASK = "classify_complaint"
NEW_NAME = "Classify and prioritise the complaint"
COMPLAINT = {
    "customer_name": "Mrs Wang",
    "customer_contact": "wang@example.com",
    "product_name": "Sofa Oslo 3-seater",
    "problem_type": "quality",
    "complaint_description": "The fabric tore along the seam.",
}


def task_name_now(in_database) -> str:
    from engine import definitions

    def read(session):
        latest = definitions.latest_definition(session, PROCESS)
        return definitions.parsed(session, latest).user_tasks[TASK].name

    return in_database(read)


def open_modeler(page: Page, base_url: str) -> None:
    page.get_by_role("link", name="Modeler").click()
    expect(page).to_have_url(f"{base_url}/modeler")
    page.locator(f"tr[data-process='{PROCESS}']").get_by_role("link", name="Open in the modeler").click()
    expect(page).to_have_url(f"{base_url}/modeler/{PROCESS}/edit")
    expect(page.locator("#modeler")).to_have_attribute("data-ready", "true")


def inbox_row(page: Page, case_title: str):
    return page.locator("#available tr[data-task-id]").filter(has_text=case_title)


def test_owner_renames_a_task_saves_and_publishes_new_cases_use_it(new_page, live_server, login, start_case,
                                                                   in_database):
    old_name = task_name_now(in_database)
    assert old_name != NEW_NAME
    start_case("cathy", PROCESS, {"title": "Complaint before the change", **COMPLAINT})

    owner = new_page()
    login(owner, live_server, "owen")
    open_modeler(owner, live_server)
    expect(owner.locator("#report-summary")).to_have_text("No problems: the diagram can be published.")

    # --- select the task on the canvas, rename it in the properties panel -----------------------
    owner.locator(f".djs-element.djs-shape[data-element-id='{TASK}']").click()
    panel = owner.locator("#properties")
    expect(panel.locator(".bio-properties-panel-header-label")).to_have_text(old_name)
    general = panel.locator("[data-group-id='group-general']")
    general.locator(".bio-properties-panel-group-header").click()
    name = general.locator("#bio-properties-panel-name")
    expect(name).to_have_value(old_name)
    name.fill(NEW_NAME)
    expect(owner.locator("#status")).to_have_text("Unsaved changes.")
    expect(panel.locator(".bio-properties-panel-header-label")).to_have_text(NEW_NAME)

    # --- save a draft, then publish with a change note -------------------------------------------
    owner.get_by_label("Note for this draft or version (optional)").fill("Clearer task name")
    owner.get_by_role("button", name="Save draft").click()
    expect(owner.locator("#status")).to_have_text(re.compile(r"^Saved draft #\d+ at "))
    draft_rows = owner.locator("#drafts tbody tr")
    expect(draft_rows).to_have_count(1)
    expect(draft_rows.first).to_contain_text("Owen Price")
    expect(draft_rows.first).to_contain_text("Clearer task name")

    owner.get_by_role("button", name="Publish").click()
    expect(owner.locator("#status")).to_contain_text("Published version 2.")
    assert task_name_now(in_database) == NEW_NAME

    # --- the process page lists both versions; the diff marks the renamed task ------------------
    owner.locator("#status").get_by_role("link", name="All versions").click()
    expect(owner).to_have_url(f"{live_server}/modeler/{PROCESS}")
    v2 = owner.locator("#versions tr[data-version='2']")
    expect(v2).to_contain_text("Owen Price")
    expect(v2).to_contain_text("Clearer task name")
    expect(owner.locator("#versions tr[data-version='1']")).to_be_visible()
    expect(owner.locator("#drafts tr[data-draft-id]")).to_have_count(1)
    v2.get_by_role("link", name="Changes from v1").click()
    expect(owner.locator("#diagram-old")).to_have_attribute("data-rendered", "true")
    expect(owner.locator("#diagram-new")).to_have_attribute("data-rendered", "true")
    expect(owner.locator(f"#diagram-new .djs-element.df-changed[data-element-id='{TASK}']")).to_have_count(1)
    expect(owner.locator(f"#diagram-old .djs-element.df-changed[data-element-id='{TASK}']")).to_have_count(1)
    renamed = owner.locator(f"#changes tr[data-element-id='{TASK}']")
    expect(renamed).to_contain_text("changed")
    expect(renamed.locator("td.before")).to_have_text(old_name)
    expect(renamed.locator("td.after")).to_have_text(NEW_NAME)

    # --- a new case gets the new name in the assignee's inbox; the old case keeps the old one ----
    start_case("cathy", PROCESS, {"title": "Complaint after the change", **COMPLAINT})
    worker = new_page()
    login(worker, live_server, "cathy")
    expect(inbox_row(worker, "Complaint after the change").get_by_role("link")).to_have_text(NEW_NAME)
    expect(inbox_row(worker, "Complaint before the change").get_by_role("link")).to_have_text(old_name)


def test_report_ids_select_elements_and_errors_block_publishing(new_page, live_server, login, in_database):
    from engine import definitions, modeling, users

    def broken_draft(session):
        xml = definitions.latest_definition(session, PROCESS).xml
        xml = xml.replace('camunda:candidateGroups="customer_service"', 'camunda:candidateGroups="wizards"', 1)
        return modeling.save_draft(session, users.user_by_name(session, "owen"), xml, note="broken").id

    draft_id = in_database(broken_draft)
    owner = new_page()
    login(owner, live_server, "owen")
    owner.goto(f"{live_server}/modeler/{PROCESS}/edit?draft={draft_id}")
    expect(owner.locator("#modeler")).to_have_attribute("data-ready", "true")
    problem = owner.locator("#problems li.problem-error").filter(has_text="“wizards” is not a known role")
    expect(problem).to_have_count(1)
    expect(owner.locator("#report-summary")).to_contain_text("1 error")

    problem.get_by_role("button").click()
    expect(owner.locator("#properties .bio-properties-panel-header-label")).to_have_text(
        re.compile(r"\S"))  # an element is selected: the panel names it
    element_id = problem.get_attribute("data-element-id")
    expect(owner.locator(f".djs-element.selected[data-element-id='{element_id}']")).to_have_count(1)
    expect(owner.locator(f".djs-element.df-problem-error[data-element-id='{element_id}']")).to_have_count(1)

    owner.get_by_role("button", name="Publish").click()
    expect(owner.locator("#status")).to_have_text("Not published: the diagram has errors.")
    assert in_database(lambda s: definitions.latest_definition(s, PROCESS).version) == 1
    expect(problem.locator("a.map-group")).to_have_count(0)  # mapping groups is an administrator's work

    admin = new_page()
    login(admin, live_server, "admin")
    admin.goto(f"{live_server}/modeler/{PROCESS}/edit?draft={draft_id}")
    expect(admin.locator("#modeler")).to_have_attribute("data-ready", "true")
    link = admin.locator("#problems li.problem-error a.map-group")
    expect(link).to_have_text("Map “wizards” to a role")
    expect(link).to_have_attribute("href", "/admin/groups?group=wizards#map")


@pytest.mark.parametrize("username", ["cathy", "mark"])
def test_employees_get_403_on_the_modeler(page, live_server, login, username):
    login(page, live_server, username)
    expect(page.get_by_role("link", name="Modeler")).to_have_count(0)
    for path in ("/modeler", f"/modeler/{PROCESS}/edit"):
        response = page.goto(f"{live_server}{path}")
        assert response is not None and response.status == 403
        expect(page.locator("article.error-page h1")).to_have_text("403 · Not allowed")
