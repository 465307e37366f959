"""Pages speak the employee's words: names not usernames, priorities as words, the step a decision led to,
no hashes outside the auditors' view; refused numbers and dates stay visible; notifications read when seen."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from engine import forms, notify, users
from engine.db import HumanTask, Notification
from engine.errors import InvalidForm
from web.database import db

DRAWING = "engineering_drawing_application"
DRAWINGS = {"title": "Drawings for Hotel Aurora", "customer_name": "Hotel Aurora", "project_name": "Lobby",
            "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "40"}
AUDIT = {"title": "Audit Oakline Hamburg", "dealer_name": "Oakline", "store_name": "Hamburg City",
         "region": "North", "audit_date": "2026-12-03"}
OK = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true", "display_ok": "true"}


def _start(client, key: str, values: dict[str, str]) -> int:
    response = client.post(f"/processes/{key}/start", data=values)
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(client.get("/requests").get_data(as_text=True).split('data-instance-id="')[1].split('"')[0])


@pytest.fixture
def open_task(app):

    def find(instance_id: int) -> int:
        with app.app_context():
            return db().scalar(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                          HumanTask.status == "open"))
    return find


def test_the_starter_is_named_not_their_username(login_as, open_task):
    steve = login_as("steve")
    case_id = _start(steve, DRAWING, DRAWINGS)
    page = steve.get(f"/instances/{case_id}").get_data(as_text=True)
    assert "<th scope=\"row\">Started by</th><td>Steve Hall</td>" in page
    assert "(username)" not in page and "<td>steve</td>" not in page
    task = login_as("clara").get(f"/tasks/{open_task(case_id)}").get_data(as_text=True)
    assert "<th scope=\"row\">Started by</th><td>Steve Hall</td>" in task


@pytest.mark.parametrize(("priority", "word"), [(90, "High"), (70, "High"), (69, "Normal"), (50, "Normal"),
                                                (31, "Normal"), (30, "Low"), (0, "Low")])
def test_priorities_are_words_with_the_number_in_a_tooltip(app, login_as, open_task, priority, word):
    case_id = _start(login_as("steve"), DRAWING, DRAWINGS)
    with app.app_context():
        db().get(HumanTask, open_task(case_id)).priority = priority
        db().commit()
    page = login_as("clara").get("/").get_data(as_text=True)
    assert f'title="Priority {priority} of 100">{word}</span>' in page


def _finished_audit(login_as, open_task) -> int:
    case_id = _start(login_as("mark"), "dealer_audit", AUDIT)
    steps = [("amy", {**OK, "display_ok": "false", "findings": "Old display"}),
             ("dora", {"rectification_deadline": "2026-12-20", "rectification_actions": "New display"}),
             ("amy", OK), ("mark", {"audit_rating": "B"})]
    for username, values in steps:
        client = login_as(username)
        task_id = open_task(case_id)
        client.post(f"/tasks/{task_id}/claim")
        response = client.post(f"/tasks/{task_id}/complete", data=values)
        assert response.status_code == 302, response.get_data(as_text=True)
    return case_id


def test_the_default_branch_names_its_target_and_hashes_are_for_auditors(login_as, open_task):
    case_id = _finished_audit(login_as, open_task)
    auditor = login_as("alice").get(f"/history/{case_id}").get_data(as_text=True)
    decisions = re.findall(r'<li data-kind="gateway_decision".*?</li>', auditor, re.S)
    assert len(decisions) == 2
    assert "→ Rectify findings" in decisions[0] and "(by default)" in decisions[0]
    assert "None" not in decisions[0]
    assert "→ Close audit with rating" in decisions[1]
    assert 'class="hash"' in auditor and "SHA-256" in auditor and 'id="case-chain"' in auditor

    employee = login_as("amy").get(f"/history/{case_id}").get_data(as_text=True)
    assert "→ Rectify findings" in employee
    assert 'class="hash"' not in employee and "SHA-256" not in employee and 'id="case-chain"' not in employee
    case_page = login_as("amy").get(f"/instances/{case_id}").get_data(as_text=True)
    assert not re.search(r"\b[0-9a-f]{16,}\b", case_page)


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("quantity", "nine hundred k", "Enter a whole number."),
    ("drawings_needed_by", "2026-02-30", "Enter a date as YYYY-MM-DD."),
])
def test_a_refused_number_or_date_stays_visible_with_its_message(login_as, field, typed, message):
    response = login_as("steve").post(f"/processes/{DRAWING}/start", data={**DRAWINGS, field: typed})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    tag = re.search(rf'<input [^>]*id="{field}"[^>]*>', page).group(0)
    assert 'type="text"' in tag and f'value="{typed}"' in tag and "pattern=" in tag
    assert f'aria-describedby="{field}-error"' in tag
    assert f'<small class="field-error" id="{field}-error">{message}</small>' in page


def test_a_refused_search_date_stays_visible(login_as):
    page = login_as("alice").get("/audit?started_from=2026-02-30&started_to=2026-03-01").get_data(as_text=True)
    assert re.search(r'<input type="text" id="started_from" name="started_from" value="2026-02-30"', page)
    assert re.search(r'<input type="date" id="started_to" name="started_to" value="2026-03-01"', page)


def test_a_valid_number_keeps_its_number_input(login_as):
    page = login_as("steve").post(f"/processes/{DRAWING}/start",
                                  data={**DRAWINGS, "title": "", "quantity": "40"}).get_data(as_text=True)
    assert re.search(r'<input type="number"[^>]*id="quantity"[^>]*value="40"', page)


def test_a_number_a_browser_would_blank_is_shown_as_text_even_when_accepted(login_as):
    page = login_as("steve").post(f"/processes/{DRAWING}/start",
                                  data={**DRAWINGS, "title": "", "quantity": "1,000"}).get_data(as_text=True)
    assert re.search(r'<input type="text"[^>]*id="quantity"[^>]*value="1,000"', page)


def test_notifications_are_read_when_seen(app, login_as):
    _start(login_as("steve"), DRAWING, DRAWINGS)  # a new task for the clerks
    clara = login_as("clara")
    assert 'class="badge" id="unread-count">1<' in clara.get("/processes").get_data(as_text=True)
    page = clara.get("/notifications").get_data(as_text=True)
    assert page.count('<li class="unread') == 1  # shown as new this once…
    assert 'id="unread-count"' not in page  # …and already counted as read
    assert '<li class="unread' not in clara.get("/notifications").get_data(as_text=True)
    with app.app_context():
        clara_user = users.user_by_name(db(), "clara")
        assert notify.unread_count(db(), clara_user) == 0
        assert all(n.read_at for n in db().scalars(select(Notification).where(Notification.user_id == clara_user.id)))


def test_mark_all_read_reads_those_beyond_the_page(app, login_as):
    with app.app_context():
        clara = users.user_by_name(db(), "clara")
        db().add_all([Notification(user_id=clara.id, kind="task_created", message=f"note {i}") for i in range(105)])
        db().commit()
    client = login_as("clara")
    client.get("/notifications")
    with app.app_context():
        assert notify.unread_count(db(), users.user_by_name(db(), "clara")) == 5  # the 100 shown were read
    assert client.post("/notifications/read").status_code == 302
    with app.app_context():
        assert notify.unread_count(db(), users.user_by_name(db(), "clara")) == 0


def test_one_wording_per_length_limit():
    field = forms.FormField(id="note", label="Note", type="string", constraints={"maxlength": "4000"})
    form = forms.Form(fields=[field])
    with pytest.raises(InvalidForm) as too_long:
        forms.validate(form, {"note": "x" * 4001}, {})
    with pytest.raises(InvalidForm) as way_too_long:
        forms.validate(forms.Form(fields=[forms.FormField(id="note", label="Note", type="string")]),
                       {"note": "x" * (forms.MAX_TEXT + 1)}, {})
    assert too_long.value.errors["note"] == "Enter at most 4,000 characters."
    assert way_too_long.value.errors["note"] == f"Enter at most {forms.MAX_TEXT:,} characters."
