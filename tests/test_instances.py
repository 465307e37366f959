"""Delegate a task; cancel, suspend and resume a case — each audited, each permission-checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, case_actions, definitions, inbox, running
from engine.db import Event, HumanTask
from engine.errors import InvalidForm, NotAllowed, TaskNoLongerOpen

MINI = (Path(__file__).parent / "data" / "mini_approval.bpmn").read_text()


@pytest.fixture
def case(session, user):
    definitions.deploy(session, None, MINI)
    session.commit()
    instance = actions.start_process(session, user("steve"), "mini_approval", {"title": "Van", "amount": "2"})
    session.commit()
    return instance


def _task(session, instance):
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                   HumanTask.status == "open")).one()


def _last_event(session, instance):
    return session.scalars(select(Event).where(Event.instance_id == instance.id).order_by(Event.id.desc())).first()


@pytest.fixture
def second_marketing_manager(session, user):
    from engine import users

    other = users.ensure_user(session, "mona", "Mona Berg", "x", ["marketing_manager"])
    session.commit()
    return other


def test_delegate_to_a_colleague_of_the_role(session, user, case, second_marketing_manager):
    task = _task(session, case)
    with pytest.raises(NotAllowed):
        actions.delegate(session, user("mark"), task.id, "mona")  # not claimed by mark yet
    actions.claim(session, user("mark"), task.id)
    session.commit()
    assert [u.username for u in actions.delegation_candidates(session, task)] == ["mark", "mona"]
    with pytest.raises(InvalidForm) as caught:
        actions.delegate(session, user("mark"), task.id, "steve")
    assert "role" in caught.value.errors["to"]
    actions.delegate(session, user("mark"), task.id, "mona")
    session.commit()
    assert [t.id for t in inbox.inbox(session, second_marketing_manager).assigned] == [task.id]
    event = _last_event(session, case)
    assert (event.kind, event.actor.username, event.data["from"], event.data["to"]) == (
        "delegated", "mark", "mark", "mona")


def test_suspend_holds_the_tasks_and_resume_releases_them(session, user, case):
    task = _task(session, case)
    with pytest.raises(NotAllowed):
        case_actions.suspend(session, user("mark"), case.id, "why not")
    with pytest.raises(InvalidForm):
        case_actions.suspend(session, user("admin"), case.id, "  ")
    case_actions.suspend(session, user("admin"), case.id, "Budget freeze")
    session.commit()
    with pytest.raises(TaskNoLongerOpen) as caught:
        actions.complete_task(session, user("mark"), task.id, {"decision": "approve"})
    assert "suspended" in str(caught.value)
    session.rollback()
    case_actions.resume(session, user("admin"), case.id, "Freeze lifted")
    session.commit()
    actions.complete_task(session, user("mark"), task.id, {"decision": "approve"})
    session.commit()
    kinds = [e.kind for e in session.scalars(select(Event).where(Event.instance_id == case.id).order_by(Event.id))]
    assert kinds[2:4] == ["suspended", "resumed"] and kinds[-1] == "ended"


def test_starter_cancels_and_the_task_leaves_the_inbox(session, user, case):
    with pytest.raises(NotAllowed):
        case_actions.cancel(session, user("sara"), case.id, "not mine")
    cancelled = case_actions.cancel(session, user("steve"), case.id, "Bought elsewhere")
    session.commit()
    assert cancelled.status == "cancelled" and cancelled.ended_at is not None
    assert [t for t in inbox.inbox(session, user("mark")).available if t.instance_id == case.id] == []
    event = _last_event(session, case)
    assert (event.kind, event.actor.username, event.data["reason"]) == ("cancelled", "steve", "Bought elsewhere")
    assert running.RunningInstance.open(session, case.id).workflow.is_completed()


COMPLAINT = {"title": "Wobbly chair", "customer_name": "J. Weber", "customer_contact": "0171",
             "product_name": "Oak chair", "problem_type": "quality", "complaint_description": "Loose leg"}


def test_case_actions_over_http(login_as):
    cathy = login_as("cathy")
    instance_id = int(cathy.post("/processes/customer_complaint/start", data=COMPLAINT).location.rsplit("/", 1)[1])
    page = cathy.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert ">Cancel</button>" in page and ">Suspend</button>" in page, "cathy's role owns the complaint process"
    assert ">Cancel</button>" not in login_as("alice").get(f"/instances/{instance_id}").get_data(as_text=True)
    assert login_as("mark").post(f"/instances/{instance_id}/suspend", data={"reason": "x"}).status_code == 403

    missing = cathy.post(f"/instances/{instance_id}/cancel", data={"reason": ""})
    assert missing.status_code == 422 and "Say why" in missing.get_data(as_text=True)
    suspended = cathy.post(f"/instances/{instance_id}/suspend", data={"reason": "Waiting for the customer"})
    assert suspended.status_code == 302
    task_id = int(cathy.get("/").get_data(as_text=True).split('data-task-id="')[1].split('"')[0])
    held = cathy.post(f"/tasks/{task_id}/complete", data={"severity": "low", "confirmed_type": "quality"})
    assert held.status_code == 409 and "suspended" in held.get_data(as_text=True)
    assert cathy.post(f"/instances/{instance_id}/resume", data={"reason": "Customer called"}).status_code == 302
    assert cathy.post(f"/instances/{instance_id}/cancel", data={"reason": "Duplicate"}).status_code == 302
    page = cathy.get(f"/instances/{instance_id}").get_data(as_text=True)
    assert 'id="instance-status">cancelled<' in page and "Duplicate" not in cathy.get("/").get_data(as_text=True)
    assert [k for k in ("suspended", "resumed", "cancelled") if f'data-kind="{k}"' in page] == [
        "suspended", "resumed", "cancelled"]


def test_delegate_over_http(login_as, second_marketing_manager_http):
    steve = login_as("steve")
    steve.post("/processes/engineering_drawing_application/start", data={
        "title": "Lobby", "customer_name": "Hotel", "project_name": "Lobby", "drawings_needed_by": "2027-01-01",
        "product_lines": "Chairs"})
    clara = login_as("clara")
    task_id = int(clara.get("/").get_data(as_text=True).split('data-task-id="')[1].split('"')[0])
    clara.post(f"/tasks/{task_id}/complete", data={"registration_number": "R1", "registration_date": "2026-11-26"})
    mark = login_as("mark")
    task_id = int(mark.get("/").get_data(as_text=True).split('data-task-id="')[1].split('"')[0])
    mark.post(f"/tasks/{task_id}/claim")
    assert 'option value="mona"' in mark.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert mark.post(f"/tasks/{task_id}/delegate", data={"to": "steve"}).status_code == 422
    assert mark.post(f"/tasks/{task_id}/delegate", data={"to": "mona"}).status_code == 302
    assert 'id="assignee">Mona Berg<' in mark.get(f"/tasks/{task_id}").get_data(as_text=True)


@pytest.fixture
def second_marketing_manager_http(app):
    from engine import users
    from web.database import db

    with app.app_context():
        users.ensure_user(db(), "mona", "Mona Berg", "demo", ["marketing_manager"])
        db().commit()


def test_admin_changes_roles_and_it_is_audited(session, user):
    from engine import users

    steve = user("steve")
    with pytest.raises(NotAllowed):
        users.update_user(session, user("mark"), steve.id, ["sales_manager"], True)
    with pytest.raises(InvalidForm):
        users.update_user(session, user("admin"), user("admin").id, ["auditor"], True)
    users.update_user(session, user("admin"), steve.id, ["sales_rep", "sales_manager"], True)
    session.commit()
    assert steve.role_keys == {"sales_rep", "sales_manager"}
    event = session.scalars(select(Event).where(Event.kind == "user_changed")).one()
    assert event.data == {"user": "steve", "before": {"roles": ["sales_rep"], "active": True},
                          "after": {"roles": ["sales_manager", "sales_rep"], "active": True}}


def test_admin_page_over_http(login_as):
    admin = login_as("admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert 'id="user-steve"' in page
    steve_id = int(page.split('id="user-steve"')[0].rsplit("/admin/users/", 1)[1].split('"')[0])
    response = admin.post(f"/admin/users/{steve_id}", data={"roles": ["sales_rep", "dealer"], "active": "on"})
    assert response.status_code == 302
    assert login_as("steve").get("/processes").status_code == 200
    admin.post(f"/admin/users/{steve_id}", data={"roles": ["sales_rep"]})
    blocked = admin.application.test_client().post("/login", data={"username": "steve", "password": "demo"})
    assert blocked.status_code == 401, "a deactivated user cannot log in"
    assert login_as("mark").get("/admin/users").status_code == 403
