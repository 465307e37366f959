"""A customer complaint through the inbox, as the people of the BPMN lanes see it in Chromium.

Who does what is read from bpmn/customer_complaint.bpmn (the task's ``camunda:candidateGroups``)
and the demo organisation, so a change of lane in the model moves the test to the right person.
"""

from __future__ import annotations

import re
from functools import cache

from lxml import etree
from playwright.sync_api import Locator, Page, expect

from workflows.catalogue import DEMO_USERS, process_spec

BPMN = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL"}
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
PROCESS = "customer_complaint"
TITLE = "Complaint: Wang, sofa fabric tear"


@cache
def user_task(element_id: str, process_key: str = PROCESS) -> tuple[str, str]:
    """``(name, candidate role)`` of a user task of the shipped BPMN."""
    tree = etree.parse(str(process_spec(process_key).path))
    task = tree.find(f".//bpmn:userTask[@id='{element_id}']", BPMN)
    assert task is not None, f"{process_key}.bpmn has no user task {element_id}"
    return task.get("name"), task.get(f"{CAMUNDA}candidateGroups").split(",")[0].strip()


def demo_user(role: str, *, other_than: str | None = None) -> tuple[str, str]:
    """``(username, full name)`` of a demo user holding ``role``."""
    for demo in DEMO_USERS:
        if role in demo.roles and demo.username != other_than:
            return demo.username, demo.full_name
    raise AssertionError(f"no demo user has the role {role}")


def field(page: Page, label: str) -> Locator:
    """The form control labelled exactly ``label`` (a required field's label ends in " *")."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(label)}(\s*\*)?\s*$"))


def task_rows(page: Page, table: str, case_title: str) -> Locator:
    return page.locator(f"#{table} tr[data-task-id]").filter(has_text=case_title)


def flash(page: Page) -> Locator:
    return page.locator("p.flash")


def test_complaint_is_started_claimed_validated_completed_and_routed(new_page, live_server, login):
    starter, _ = demo_user(process_spec(PROCESS).starter_roles[0])

    # --- the customer service specialist records the complaint -------------------------------
    page = new_page()
    login(page, live_server, starter)
    page.get_by_role("link", name="Start a process").click()
    card = page.locator(f"article#process-{PROCESS}")
    expect(card).to_contain_text("Customer complaint")
    # <a role="button">: a link that looks (and is announced) as a button
    card.get_by_role("button", name="Start").click()
    expect(page).to_have_url(f"{live_server}/processes/{PROCESS}/start")
    expect(page.get_by_role("heading", level=1)).to_have_text("Start: Customer complaint")

    field(page, "Case title").fill(TITLE)
    field(page, "Customer").fill("Mrs Wang")
    field(page, "Contact (phone / e-mail)").fill("wang@example.com")
    field(page, "Product").fill("Sofa Oslo 3-seater")
    field(page, "Problem type").select_option(label="Product quality")
    field(page, "Description of the problem").fill("The fabric tore along the seam after two weeks.")
    page.get_by_role("button", name="Start").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server)}/instances/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(flash(page)).to_have_text(f"Started “{TITLE}”.")
    expect(page.locator("#instance-status")).to_have_text("running")
    classify_name, classify_role = user_task("classify_complaint")
    expect(page.locator("#open-tasks")).to_contain_text(classify_name)
    expect(page.locator("ol#events li[data-kind='started']")).to_have_count(1)

    # --- the next lane's person, in a browser context of their own, claims the task -----------
    worker, worker_name = demo_user(classify_role)
    other = new_page()
    login(other, live_server, worker)
    available = task_rows(other, "available", TITLE)
    expect(available).to_have_count(1)
    expect(available.get_by_role("link")).to_have_text(classify_name)
    expect(available.locator("td").nth(1)).to_have_text(TITLE)
    expect(task_rows(other, "assigned", TITLE)).to_have_count(0)
    available.get_by_role("button", name="Claim").click()

    expect(other).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(other.get_by_role("heading", level=1)).to_have_text(classify_name)
    expect(flash(other)).to_have_text(f"You claimed “{classify_name}”.")
    expect(other.locator("#assignee")).to_have_text(worker_name)
    expect(other.get_by_role("button", name="Unclaim")).to_be_visible()
    expect(other.get_by_role("button", name="Claim", exact=True)).to_have_count(0)

    other.get_by_role("link", name="Inbox").click()
    assigned = task_rows(other, "assigned", TITLE)
    expect(assigned).to_have_count(1)
    expect(task_rows(other, "available", TITLE)).to_have_count(0)
    expect(other.locator("#count-assigned")).to_have_text("1")
    expect(other.locator("#count-available")).to_have_text("0")
    assigned.get_by_role("link", name=classify_name).click()

    # --- a required field left empty: the message sits under it, the typed values stay ------
    expect(other.get_by_role("heading", level=1)).to_have_text(classify_name)
    expect(other.locator("label[for='severity'] .required")).to_have_text("*")
    expect(field(other, "Severity")).to_have_value("")
    field(other, "Confirmed problem type").select_option(label="Product quality")
    notes = "Seam stitching looks loose; photos in the customer file."
    field(other, "Classification notes").fill(notes)
    with other.expect_response(lambda r: r.url.endswith("/complete") and r.request.method == "POST") as sent:
        other.get_by_role("button", name="Complete").click()
    assert sent.value.status == 422

    expect(other.locator("p.form-errors")).to_have_text("Please correct the 1 field marked below.")
    severity_box = other.locator(".field[data-field='severity']")
    expect(severity_box.locator("small.field-error")).to_have_text("This field is required.")
    expect(field(other, "Severity")).to_have_attribute("aria-invalid", "true")
    expect(other.locator("small.field-error")).to_have_count(1)
    expect(field(other, "Confirmed problem type")).to_have_value("quality")
    expect(field(other, "Classification notes")).to_have_value(notes)
    expect(other.locator("#assignee")).to_have_text(worker_name)

    # --- fixed and completed ------------------------------------------------------------------
    field(other, "Severity").select_option(label="High")
    other.get_by_role("button", name="Complete").click()
    expect(other).to_have_url(f"{live_server}/")
    expect(flash(other)).to_have_text(f"Completed “{classify_name}” of “{TITLE}”.")
    expect(other.locator("tr[data-task-id]").filter(has_text=TITLE)).to_have_count(0)
    expect(other.locator("#count-assigned")).to_have_text("0")

    # --- the quality branch: production gets the task, the sales manager does not -------------
    resolve_name, resolve_role = user_task("resolve_quality_problem")
    following, _ = demo_user(resolve_role, other_than=worker)
    third = new_page()
    login(third, live_server, following)
    row = task_rows(third, "available", TITLE)
    expect(row).to_have_count(1)
    expect(row.get_by_role("link")).to_have_text(resolve_name)
    expect(row.get_by_role("button", name="Claim")).to_be_visible()

    _, service_role = user_task("resolve_service_problem")
    bystander, _ = demo_user(service_role)
    fourth = new_page()
    login(fourth, live_server, bystander)
    expect(fourth.locator("tr[data-task-id]").filter(has_text=TITLE)).to_have_count(0)

    # --- and the starter sees where the case stands ---------------------------------------------
    page.get_by_role("link", name="My requests").click()
    request_row = page.locator("tr[data-instance-id]").filter(has_text=TITLE)
    expect(request_row).to_have_count(1)
    expect(request_row).to_contain_text(resolve_name)


def test_tasks_of_other_roles_and_unknown_addresses_get_error_pages(page, live_server, login, start_case):
    starter, _ = demo_user(process_spec(PROCESS).starter_roles[0])
    _, task_ids = start_case(
        starter,
        PROCESS,
        {
            "title": TITLE,
            "customer_name": "Mrs Wang",
            "customer_contact": "wang@example.com",
            "product_name": "Sofa Oslo 3-seater",
            "problem_type": "quality",
            "complaint_description": "The fabric tore along the seam.",
        },
    )
    assert len(task_ids) == 1
    _, role = user_task("classify_complaint")
    assert role != "marketing_manager"
    login(page, live_server, "mark")

    response = page.goto(f"{live_server}/tasks/{task_ids[0]}")
    assert response is not None and response.status == 403
    expect(page.locator("article.error-page h1")).to_have_text("403 · Not allowed")
    expect(page.locator(".error-message")).to_have_text("This task belongs to another role.")
    expect(page.get_by_text(TITLE)).to_have_count(0)
    expect(page.get_by_role("button", name="Complete")).to_have_count(0)

    response = page.goto(f"{live_server}/tasks/999999")
    assert response is not None and response.status == 404
    expect(page.locator("article.error-page h1")).to_have_text("404 · Not found")
    expect(page.locator(".error-message")).to_have_text("There is no task 999999.")

    response = page.goto(f"{live_server}/no/such/page")
    assert response is not None and response.status == 404
    expect(page.locator("article.error-page h1")).to_have_text("404 · Not found")
    expect(page.locator(".error-message")).to_contain_text("There is no such page.")
    page.get_by_role("link", name="Back to the inbox").click()
    expect(page).to_have_url(f"{live_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")


def test_wrong_password_keeps_the_username_and_says_why(page, live_server):
    page.goto(f"{live_server}/login")
    page.get_by_label("Username").fill("mark")
    page.get_by_label("Password").fill("not-the-password")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as sent:
        page.get_by_role("button", name="Log in").click()
    assert sent.value.status == 401

    expect(page.locator("p.flash")).to_have_text("Unknown username or wrong password.")
    expect(page.get_by_role("alert")).to_have_text("Unknown username or wrong password.")
    expect(page.get_by_label("Username")).to_have_value("mark")
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    expect(page).to_have_url(f"{live_server}/login")

    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server}/")
    expect(page.locator(".whoami")).to_contain_text("Mark Chen")
