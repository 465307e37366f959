"""Inbox filters, saved filters with counts, a manager's bulk reassignment and follow-up dates (issue 18),
through the engine API on SQLite and PostgreSQL.

The seeded set: Sam (sales manager, managing sales representatives) starts three target settings, each
with a "Submit regional forecast" task for the sales representatives Steve and Sara; Cathy (customer
service) records two complaints, each with a "Classify complaint" task for customer service.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from engine import actions, task_filters
from engine.db import Event, HumanTask
from engine.errors import InvalidForm, NotAllowed, NotFound
from engine.task_filters import TaskFilter

T0 = datetime(2026, 11, 26, 9, 0)  # a Thursday
TARGETS = {"target_year": "2027", "target_period": "year"}
COMPLAINT = {"customer_name": "J. Weber", "customer_contact": "0171 555 0101", "product_name": "Oak chair",
             "problem_type": "quality", "complaint_description": "Leg came loose after two weeks"}


@pytest.fixture
def seeded(session, user, now):
    """Three forecast tasks (sales_rep) and two complaint classifications (customer_service); ids by title."""
    sam, cathy = user("sam"), user("cathy")
    titles = {}
    for title in ("Targets North 2027", "Targets East 2027", "Targets South 2027"):
        titles[title] = actions.start_process(session, sam, "sales_target_setting", {**TARGETS, "title": title}).id
    for title, key in (("Wobbly chair", "CMP-5521"), ("Torn sofa", "CMP-7730")):
        titles[title] = actions.start_process(session, cathy, "customer_complaint", {**COMPLAINT, "title": title},
                                              business_key=key).id
    session.commit()
    tasks = {title: session.scalar(select(HumanTask.id).where(HumanTask.instance_id == case_id,
                                                              HumanTask.status == "open"))
             for title, case_id in titles.items()}
    return tasks


def _ids(session, actor, criteria: TaskFilter) -> set[int]:
    return {row.id for row in task_filters.filtered_inbox(session, actor, criteria).rows}


def _set(session, task_id: int, **values) -> None:
    session.execute(update(HumanTask).where(HumanTask.id == task_id).values(**values))
    session.commit()


def test_each_criterion_narrows_the_visible_tasks(session, user, seeded, now):
    steve, cathy = user("steve"), user("cathy")
    forecasts = {seeded[t] for t in ("Targets North 2027", "Targets East 2027", "Targets South 2027")}
    complaints = {seeded["Wobbly chair"], seeded["Torn sofa"]}
    assert _ids(session, steve, TaskFilter()) == forecasts
    assert _ids(session, cathy, TaskFilter()) == complaints
    assert _ids(session, steve, TaskFilter(process="sales_target_setting")) == forecasts
    assert _ids(session, steve, TaskFilter(process="customer_complaint")) == set()
    assert _ids(session, cathy, TaskFilter(step="classify_complaint")) == complaints
    assert _ids(session, steve, TaskFilter(step="classify_complaint")) == set()
    assert _ids(session, steve, TaskFilter(role="sales_rep")) == forecasts
    assert _ids(session, steve, TaskFilter(text="east")) == {seeded["Targets East 2027"]}
    assert _ids(session, cathy, TaskFilter(text="cmp-77")) == {seeded["Torn sofa"]}  # business key
    assert _ids(session, cathy, TaskFilter(text="%")) == set()  # a wildcard is a character like any other

    actions.claim(session, steve, seeded["Targets North 2027"])
    session.commit()
    assert _ids(session, steve, TaskFilter(assignee="me")) == {seeded["Targets North 2027"]}
    assert _ids(session, steve, TaskFilter(assignee="unassigned")) == forecasts - {seeded["Targets North 2027"]}
    assert _ids(session, user("sara"), TaskFilter(assignee="steve")) == {seeded["Targets North 2027"]}

    _set(session, seeded["Targets North 2027"], priority=80)
    _set(session, seeded["Targets East 2027"], priority=20)
    assert _ids(session, steve, TaskFilter(priority="high")) == {seeded["Targets North 2027"]}
    assert _ids(session, steve, TaskFilter(priority="low")) == {seeded["Targets East 2027"]}
    assert _ids(session, steve, TaskFilter(priority="normal")) == {seeded["Targets South 2027"]}

    _set(session, seeded["Targets North 2027"], due_at=now.now - timedelta(hours=1))
    _set(session, seeded["Targets East 2027"], due_at=now.now + timedelta(hours=3))  # Thursday, today
    _set(session, seeded["Targets South 2027"], due_at=now.now + timedelta(days=3, hours=14))  # Sunday 23:00
    assert _ids(session, steve, TaskFilter(due="overdue")) == {seeded["Targets North 2027"]}
    assert _ids(session, steve, TaskFilter(due="today")) == {seeded["Targets North 2027"], seeded["Targets East 2027"]}
    assert _ids(session, steve, TaskFilter(due="week")) == forecasts
    _set(session, seeded["Targets South 2027"], due_at=now.now + timedelta(days=4, hours=1))  # next Monday
    assert _ids(session, steve, TaskFilter(due="week")) == forecasts - {seeded["Targets South 2027"]}
    assert _ids(session, steve, TaskFilter(due="overdue", priority="low")) == set()


def test_bad_criteria_are_refused_per_field(session, user, seeded):
    with pytest.raises(InvalidForm) as refused:
        TaskFilter.parse({"priority": "urgent", "due": "yesterday", "text": "x" * 101})
    assert set(refused.value.errors) == {"priority", "due", "text"}
    assert refused.value.values["priority"] == "urgent"
    with pytest.raises(InvalidForm) as refused:  # a role that is neither mine nor managed by me
        task_filters.filtered_inbox(session, user("steve"), TaskFilter(role="finance"))
    assert "role" in refused.value.errors
    with pytest.raises(InvalidForm):
        task_filters.filtered_inbox(session, user("steve"), TaskFilter(assignee="nobody-of-that-name"))


def _counts(session, actor) -> dict[str, int]:
    return {entry.label: entry.count for entry in task_filters.sidebar(session, actor)}


def test_saved_filters_count_what_their_owner_may_see(session, user, seeded, now):
    steve, sara, cathy, sam = user("steve"), user("sara"), user("cathy"), user("sam")
    actions.claim(session, steve, seeded["Targets North 2027"])
    _set(session, seeded["Targets East 2027"], due_at=now.now - timedelta(days=1))
    task_filters.save_filter(session, steve, "East", TaskFilter(text="East"))
    task_filters.save_filter(session, cathy, "All complaints", TaskFilter(process="customer_complaint"))
    task_filters.save_filter(session, cathy, "Everything of sales", TaskFilter(process="sales_target_setting"))
    session.commit()

    assert _counts(session, steve) == {"My tasks": 1, "Unassigned in my roles": 2, "Overdue": 1, "Due this week": 0,
                                       "Follow-up": 0, "East": 1}
    assert _counts(session, sara) == {"My tasks": 0, "Unassigned in my roles": 2, "Overdue": 1, "Due this week": 0,
                                      "Follow-up": 0}  # Steve's filters are his
    # Cathy's filter over a process whose tasks are another role's counts nothing she may not see
    assert _counts(session, cathy)["Everything of sales"] == 0
    assert _counts(session, cathy)["All complaints"] == 2
    # Sam manages the sales representatives: their tasks are in his view, his own roles' queue has none
    sam_counts = _counts(session, sam)
    assert sam_counts["Unassigned in my roles"] == 0 and sam_counts["Overdue"] == 1

    # the same name again replaces the criteria; another user's filter is not theirs to open or delete
    saved = task_filters.save_filter(session, steve, "  East ", TaskFilter(text="South"))
    session.commit()
    assert _counts(session, steve)["East"] == 1 and saved.criteria == {"text": "South"}
    with pytest.raises(NotFound):
        task_filters.resolve(session, sara, saved_id=saved.id)
    with pytest.raises(NotFound):
        task_filters.delete_filter(session, sara, saved.id)
    assert task_filters.delete_filter(session, steve, saved.id) == "East"
    with pytest.raises(InvalidForm):
        task_filters.save_filter(session, steve, "", TaskFilter(text="x"))
    with pytest.raises(InvalidForm):
        task_filters.save_filter(session, steve, "Nothing", TaskFilter())


def _statements(session, call) -> list[str]:
    """The SQL statements ``call()`` sends."""
    sent: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(session.get_bind(), "before_cursor_execute", note)
    try:
        call()
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", note)
    return sent


def test_the_sidebar_counts_again_only_after_a_change(session, user, seeded, now):
    """Counts are kept under the fingerprint of the visible tasks: the same page again reads the fingerprint
    only; a claim, a new priority or due date, and a due date passing each give the new counts."""
    steve, sara = user("steve"), user("sara")
    task_filters.save_filter(session, steve, "Urgent", TaskFilter(priority="high"))
    session.commit()
    first = _statements(session, lambda: _counts(session, steve))
    assert _counts(session, steve) == {"My tasks": 0, "Unassigned in my roles": 3, "Overdue": 0,
                                       "Due this week": 0, "Follow-up": 0, "Urgent": 0}
    again = _statements(session, lambda: _counts(session, steve))
    assert len(again) == len(first) - 1  # the counting pass is left out, the fingerprint read instead

    actions.claim(session, sara, seeded["Targets North 2027"])
    session.commit()
    assert _counts(session, steve)["Unassigned in my roles"] == 2
    _set(session, seeded["Targets East 2027"], priority=90)
    assert _counts(session, steve)["Urgent"] == 1
    _set(session, seeded["Targets South 2027"], due_at=now.now + timedelta(hours=2))
    assert _counts(session, steve)["Overdue"] == 0 and _counts(session, steve)["Due this week"] == 1
    now.advance(hours=3)  # nothing changed but the time: the due date passed
    assert _counts(session, steve)["Overdue"] == 1
    # the page's token is the poll's, counted (a new priority) or from the memo: an open page does not reload
    _set(session, seeded["Targets East 2027"], priority=50)
    for _ in range(2):
        assert task_filters.inbox_page(session, steve).token == task_filters.change_token(session, steve)
    assert _counts(session, sara)["My tasks"] == 1  # another person's sidebar is theirs


def test_a_manager_reassigns_several_tasks_and_learns_which_failed(session, user, seeded):
    sam, steve, sara = user("sam"), user("steve"), user("sara")
    north, east, south = (seeded[t] for t in ("Targets North 2027", "Targets East 2027", "Targets South 2027"))
    actions.claim(session, steve, north)
    session.commit()
    results = actions.reassign(session, sam, [north, east, seeded["Wobbly chair"], 2**31 - 1], "sara",
                               "Steve is on leave")
    session.commit()
    by_id = {r.task_id: r for r in results}
    assert by_id[north].ok and by_id[east].ok
    assert "not a task of a role you manage" in by_id[seeded["Wobbly chair"]].error
    assert by_id[2**31 - 1].error == "There is no such task."
    held = dict(session.execute(select(HumanTask.id, HumanTask.assignee_id).where(
        HumanTask.id.in_([north, east, south, seeded["Wobbly chair"]]))).all())
    assert held == {north: sara.id, east: sara.id, south: None, seeded["Wobbly chair"]: None}
    events = session.scalars(select(Event).where(Event.kind == "delegated").order_by(Event.id)).all()
    assert [(e.data["from"], e.data["to"], e.data["reason"], e.actor_id) for e in events] == [
        ("steve", "sara", "Steve is on leave", sam.id), (None, "sara", "Steve is on leave", sam.id)]

    # back to the queue; one of them is already there
    results = actions.reassign(session, sam, [north, south], None, "Back to the team")
    session.commit()
    assert results[0].ok and results[1].error == "It is already with the queue of its role."
    assert session.get(HumanTask, north).assignee_id is None
    returned = session.scalars(select(Event).where(Event.kind == "unclaimed")).all()
    assert [(e.data["from"], e.data["reason"]) for e in returned] == [("sara", "Back to the team")]

    # a completed task, and a person who may not do the task
    actions.claim(session, steve, south)
    actions.complete_task(session, steve, south, {"forecast_region": "South", "forecast_amount": "100"})
    session.commit()
    results = actions.reassign(session, sam, [south, east], "cathy", "Help out")
    assert "completed" in results[0].error
    assert results[1].error.startswith("Cathy Ortiz may not do it")


def test_reassignment_is_refused_to_non_managers_and_without_a_reason(session, user, seeded):
    with pytest.raises(NotAllowed):
        actions.reassign(session, user("steve"), [seeded["Targets East 2027"]], "sara", "Swap")
    with pytest.raises(InvalidForm) as refused:
        actions.reassign(session, user("sam"), [], "ghost", " ")
    assert set(refused.value.errors) == {"tasks", "reason", "to"}


def test_a_follow_up_date_hides_my_task_until_that_day(session, user, seeded, now):
    steve = user("steve")
    north = seeded["Targets North 2027"]
    actions.claim(session, steve, north)
    with pytest.raises(InvalidForm):
        actions.set_follow_up(session, steve, north, now.now.date())
    with pytest.raises(NotAllowed):
        actions.set_follow_up(session, user("sara"), north, date(2026, 12, 1))
    actions.set_follow_up(session, steve, north, date(2026, 12, 1))
    session.commit()
    assert _ids(session, steve, TaskFilter(assignee="me")) == set()
    assert _ids(session, steve, TaskFilter(follow_up=True)) == {north}
    assert not task_filters.filtered_inbox(session, steve, TaskFilter()).rows or north not in _ids(
        session, steve, TaskFilter())
    from engine import inbox

    assert inbox.inbox(session, steve).assigned == []
    assert north in _ids(session, user("sara"), TaskFilter())  # colleagues still see it, held by Steve
    now.advance(days=5)
    assert _ids(session, steve, TaskFilter(assignee="me")) == {north}
    assert _ids(session, steve, TaskFilter(follow_up=True)) == set()
    assert [t.id for t in inbox.inbox(session, steve).assigned] == [north]
    assert session.scalars(select(Event.kind).where(Event.kind == "follow_up_set")).all() == ["follow_up_set"]


def test_the_change_token_moves_when_the_inbox_would(session, user, seeded):
    steve, sara = user("steve"), user("sara")
    before = task_filters.change_token(session, steve)
    assert task_filters.change_token(session, steve) == before
    actions.claim(session, sara, seeded["Targets East 2027"])  # a colleague takes a task of my queue
    session.commit()
    after_claim = task_filters.change_token(session, steve)
    assert after_claim != before
    actions.start_process(session, user("cathy"), "customer_complaint", {**COMPLAINT, "title": "Another"})
    session.commit()
    assert task_filters.change_token(session, steve) == after_claim  # another role's task: nothing to show
    actions.start_process(session, user("sam"), "sales_target_setting", {**TARGETS, "title": "Targets West"})
    session.commit()
    assert task_filters.change_token(session, steve) != after_claim


# --- through HTTP -------------------------------------------------------------------------


def _start_targets(client, title: str) -> None:
    response = client.post("/processes/sales_target_setting/start", data={**TARGETS, "title": title})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def _task_ids(page: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r'data-task-id="(\d+)"', page)]


def test_the_inbox_page_filters_saves_and_counts(login_as):
    sam, steve, sara = login_as("sam"), login_as("steve"), login_as("sara")
    for title in ("Targets North 2027", "Targets East 2027"):
        _start_targets(sam, title)
    page = steve.get("/").get_data(as_text=True)
    assert 'data-filter="mine"' in page and 'data-filter="unassigned"' in page
    east = steve.get("/?text=east").get_data(as_text=True)
    assert "Targets East 2027" in east and "Targets North 2027" not in east and len(_task_ids(east)) == 1
    assert len(_task_ids(steve.get("/?filter=unassigned").get_data(as_text=True))) == 2
    assert _task_ids(steve.get("/?filter=mine").get_data(as_text=True)) == []

    refused = steve.get("/?due=tomorrow&priority=urgent&text=east")
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "Choose overdue, today or this week." in body and 'value="tomorrow" selected' in body
    assert 'value="east"' in body  # what was typed stays
    assert steve.get("/?filter=nope").status_code == 404

    saved = steve.post("/filters", data={"name": "East", "text": "east"})
    assert saved.status_code == 302 and "saved=" in saved.headers["Location"]
    nameless = steve.post("/filters", data={"name": " ", "text": "east"})
    assert nameless.status_code == 422 and "Enter a name for the filter." in nameless.get_data(as_text=True)
    page = steve.get(saved.headers["Location"]).get_data(as_text=True)
    assert len(_task_ids(page)) == 1
    import re

    counts = dict(re.findall(r'<span class="filter-name">([^<]+)</span> <span class="count"[^>]*>(\d+)<', page))
    assert counts["East"] == "1" and counts["Unassigned in my roles"] == "2" and counts["My tasks"] == "0"
    assert "East" not in sara.get("/").get_data(as_text=True).split('id="filter-list"')[1].split("</ul>")[0]
    saved_id = int(saved.headers["Location"].split("saved=")[1])
    assert sara.get(f"/?saved={saved_id}").status_code == 404
    assert sara.post(f"/filters/{saved_id}/delete").status_code == 404
    assert steve.post(f"/filters/{saved_id}/delete").status_code == 302


def test_a_manager_reassigns_ticked_tasks_over_http(login_as):
    sam, steve = login_as("sam"), login_as("steve")
    for title in ("Targets North 2027", "Targets East 2027"):
        _start_targets(sam, title)
    team = sam.get("/?filter=team-sales_rep").get_data(as_text=True)
    ids = _task_ids(team)
    assert len(ids) == 2 and 'form="bulk"' in team and 'id="bulk"' in team
    assert 'form="bulk"' not in steve.get("/").get_data(as_text=True)  # no manager: no checkboxes

    missing_reason = sam.post("/tasks/reassign", data={"task": [str(i) for i in ids], "to": "steve", "reason": "",
                                                        "next": "/?filter=team-sales_rep"})
    assert missing_reason.status_code == 422
    body = missing_reason.get_data(as_text=True)
    assert "Say why the tasks change hands" in body and body.count(" checked") >= 2  # the ticks stay

    done = sam.post("/tasks/reassign", data={"task": [str(i) for i in ids] + ["999999"], "to": "steve",
                                              "reason": "East and North to Steve", "next": "/?filter=team-sales_rep"})
    assert done.status_code == 302 and done.headers["Location"] == "/?filter=team-sales_rep"
    page = sam.get(done.headers["Location"]).get_data(as_text=True)
    assert "Reassigned 2 of 3 tasks." in page and "was not reassigned: There is no such task." in page
    assert sorted(_task_ids(steve.get("/?filter=mine").get_data(as_text=True))) == sorted(ids)
    assert steve.post("/tasks/reassign", data={"task": str(ids[0]), "reason": "mine"}).status_code == 403


def test_follow_up_over_http_and_the_change_token(login_as):
    sam, steve, sara = login_as("sam"), login_as("steve"), login_as("sara")
    _start_targets(sam, "Targets North 2027")
    first = steve.get("/inbox/changes")
    token = first.get_json()["token"]
    assert first.headers["ETag"] == f'"{token}"' and "no-cache" in first.headers["Cache-Control"]
    assert steve.get("/inbox/changes", headers={"If-None-Match": f'"{token}"'}).status_code == 304
    [task_id] = _task_ids(steve.get("/").get_data(as_text=True))
    assert sara.post(f"/tasks/{task_id}/claim").status_code == 302
    moved = steve.get("/inbox/changes", headers={"If-None-Match": f'"{token}"'})
    assert moved.status_code == 200 and moved.get_json()["token"] != token

    assert sara.post(f"/tasks/{task_id}/follow-up", data={"follow_up": "2026-02-30"}).status_code == 302
    assert "“2026-02-30” is not a date" in sara.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert sara.post(f"/tasks/{task_id}/follow-up", data={"follow_up": "2099-01-05"}).status_code == 302
    assert _task_ids(sara.get("/").get_data(as_text=True)) == []
    assert _task_ids(sara.get("/?filter=follow-up").get_data(as_text=True)) == [task_id]
    assert 'value="2099-01-05"' in sara.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert sara.post(f"/tasks/{task_id}/follow-up", data={"follow_up": ""}).status_code == 302
    assert _task_ids(sara.get("/").get_data(as_text=True)) == [task_id]
    assert steve.post(f"/tasks/{task_id}/follow-up", data={"follow_up": "2099-01-05"}).status_code == 403
