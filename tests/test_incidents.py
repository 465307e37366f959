"""A case that cannot go on stops as an incident — never a 500, never a case marked completed —
and its process owner fixes the cause and retries it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, case_actions, definitions, history, instance_migration, running
from engine.db import Event, HumanTask, Notification, Process, ProcessInstance
from engine.errors import Conflict, NotAllowed

DATA = Path(__file__).parent / "data"


def _deploy(session, name: str, **replace: str) -> None:
    xml = (DATA / name).read_text()
    for old, new in replace.items():
        xml = xml.replace(old, new)
    definition = definitions.deploy(session, None, xml)
    process = session.get(Process, definition.process_key)
    process.starter_roles, process.owner_role = ["sales_rep"], "process_owner"
    session.commit()


def _events(session, instance_id: int, kind: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id, Event.kind == kind)
                                .order_by(Event.id)))


def _open(session, instance_id: int) -> list[str]:
    return list(session.scalars(select(HumanTask.element_id).where(HumanTask.instance_id == instance_id,
                                                                    HumanTask.status == "open").order_by(HumanTask.id)))


def _stopped_case(session, user):
    """A case of stops_after_review whose review was completed with divisor 0: stopped at the score."""
    _deploy(session, "stops_after_review.bpmn")
    case = actions.start_process(session, user("steve"), "stops_after_review", {"title": "Divide"})
    session.commit()
    [task_id] = session.scalars(select(HumanTask.id).where(HumanTask.instance_id == case.id))
    actions.complete_task(session, user("mark"), task_id, {"divisor": "0"})
    session.commit()
    return case


def test_a_failing_script_after_a_completion_stops_the_case_and_keeps_the_completion(session, user):
    _deploy(session, "stops_after_review.bpmn")
    case = actions.start_process(session, user("steve"), "stops_after_review", {"title": "Divide"})
    session.commit()
    [task_id] = session.scalars(select(HumanTask.id).where(HumanTask.instance_id == case.id))

    done = actions.complete_task(session, user("mark"), task_id, {"divisor": "0"})
    session.commit()

    stored = session.get(ProcessInstance, case.id)
    assert done.created == [] and stored.status == "incident" and stored.ended_at is None
    assert stored.data["divisor"] == 0 and _open(session, case.id) == []
    [incident] = _events(session, case.id, "incident")
    assert incident.element_id == "score" and incident.data["name"] == "Compute score"
    assert "ZeroDivisionError" in incident.data["message"]
    owners = {n.user.username for n in session.scalars(select(Notification).where(Notification.kind == "incident"))}
    assert owners == {"owen"}


def test_the_owner_moves_a_stopped_case_to_a_fixed_version_and_retries_it(session, user):
    case = _stopped_case(session, user)

    with pytest.raises(NotAllowed):
        case_actions.retry(session, user("steve"), case.id)
    session.rollback()
    _deploy(session, "stops_after_review.bpmn", **{"score = 100 // divisor": "score = 100 // (divisor or 1)"})
    instance_migration.migrate_instance(session, user("owen"), case.id)
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "incident"  # moving does not run it

    retried = case_actions.retry(session, user("owen"), case.id, "divisor 0 now means 1")
    session.commit()

    assert retried.status == "running" and retried.data["score"] == 100
    assert _open(session, case.id) == ["follow_up"]
    kinds = [e.kind for e in session.scalars(select(Event).where(Event.instance_id == case.id).order_by(Event.id))]
    assert kinds[-3:] == ["migrated", "retried", "task_created"]
    with pytest.raises(Conflict):
        case_actions.retry(session, user("owen"), case.id)


def test_a_retry_that_fails_again_is_a_new_incident(session, user):
    case = _stopped_case(session, user)
    again = case_actions.retry(session, user("admin"), case.id)
    session.commit()
    assert again.status == "incident" and len(_events(session, case.id, "incident")) == 2


def test_an_endless_automatic_loop_is_an_incident_not_a_completed_case(session, user):
    _deploy(session, "goes_round.bpmn")
    began = time.perf_counter()
    case = actions.start_process(session, user("steve"), "goes_round", {"title": "Round and round"})
    session.commit()
    assert time.perf_counter() - began < 20
    stored = session.get(ProcessInstance, case.id)
    assert stored.status == "incident" and stored.ended_at is None
    [incident] = _events(session, case.id, "incident")
    assert f"{running.MAX_AUTOMATIC_STEPS} automatic steps" in incident.data["message"]
    assert _events(session, case.id, "ended") == []


def test_without_an_owner_role_the_administrators_hear_of_an_incident(session, user):
    _deploy(session, "goes_round.bpmn")
    session.get(Process, "goes_round").owner_role = None
    session.commit()
    actions.start_process(session, user("steve"), "goes_round", {"title": "Round"})
    session.commit()
    told = {n.user.username for n in session.scalars(select(Notification).where(Notification.kind == "incident"))}
    assert told == {"admin"}


def test_a_process_that_calls_itself_is_an_incident(session, user):
    _deploy(session, "calls_itself.bpmn")
    began = time.perf_counter()
    case = actions.start_process(session, user("steve"), "calls_itself", {"title": "Again"})
    session.commit()
    assert time.perf_counter() - began < 20
    [incident] = _events(session, case.id, "incident")
    assert session.get(ProcessInstance, case.id).status == "incident"
    assert "nested more than" in incident.data["message"] or "automatic steps" in incident.data["message"]


def test_stopped_cases_are_found_by_the_audit_search_and_shown_on_the_case_page(app, login_as):
    with app.extensions["deptflow_sessions"]() as session:
        _deploy(session, "goes_round.bpmn")
    steve = login_as("steve")
    response = steve.post("/processes/goes_round/start", data={"title": "Round", "n": "0"})
    assert response.status_code == 302
    case_id = int(response.location.rsplit("/", 1)[1])
    assert history.InstanceFilter.parse({"status": "incident"}).status == "incident"
    found = login_as("alice").get("/audit?status=incident").get_data(as_text=True)
    assert f"/history/{case_id}" in found
    owner_page = login_as("owen").get(f"/instances/{case_id}").get_data(as_text=True)
    assert 'id="incident"' in owner_page and "Retry" in owner_page
    starter_page = steve.get(f"/instances/{case_id}").get_data(as_text=True)
    assert 'id="incident"' in starter_page and "Retry" not in starter_page
    assert login_as("mark").post(f"/instances/{case_id}/retry", data={"reason": ""}).status_code == 403
    assert steve.post(f"/instances/{case_id}/retry", data={"reason": ""}).status_code == 403
    retried = login_as("owen").post(f"/instances/{case_id}/retry", data={"reason": ""})
    assert retried.status_code == 302
    with app.extensions["deptflow_sessions"]() as session:
        assert len(_events(session, case_id, "incident")) == 2  # the loop is still there: stopped again
