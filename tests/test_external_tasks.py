"""External task workers (issue 17): a case waits at an external service task until a worker of its topic
fetches and locks it and completes it; locks expire, failures count down to an incident, cancelling the
case takes its tasks away; the API for workers, and the example worker against a live server."""

from __future__ import annotations

import importlib.util
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from engine import case_actions, definitions, external_tasks, users
from engine.db import Event, ExternalTask, HumanTask, Process, ProcessInstance, make_engine
from engine.errors import Conflict, InvalidDefinition, InvalidForm, NotAllowed, TaskNoLongerOpen

ROOT = Path(__file__).parent.parent
XML = (Path(__file__).parent / "data" / "external_archive.bpmn").read_text()
LOCK = timedelta(minutes=5)


def _deploy(session) -> None:
    definitions.deploy(session, None, XML)
    process = session.get(Process, "external_archive")
    process.starter_roles, process.owner_role = ["sales_rep"], "process_owner"
    session.commit()


@pytest.fixture
def case(session, user):
    """A started case of external_archive, waiting at “Archive the application”."""
    from engine import actions

    _deploy(session)
    started = actions.start_process(session, user("steve"), "external_archive", {"title": "Hotel Aurora"})
    session.commit()
    return started


def _rows(session, instance_id: int) -> list[ExternalTask]:
    return list(session.scalars(select(ExternalTask).where(ExternalTask.instance_id == instance_id)
                                .order_by(ExternalTask.id).execution_options(populate_existing=True)))


def _events(session, instance_id: int, kind: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.instance_id == instance_id, Event.kind == kind)
                                .order_by(Event.id)))


def _fetch(session, user, worker: str, topics=("archive",)):
    locked = external_tasks.fetch_and_lock(session, user("admin"), worker, list(topics), 10, LOCK)
    session.commit()
    return locked


# --- the engine ------------------------------------------------------------------------------


def test_a_case_waits_at_an_external_task_not_in_an_inbox(session, case):
    assert session.get(ProcessInstance, case.id).status == "running"
    assert session.scalars(select(HumanTask).where(HumanTask.instance_id == case.id)).all() == []
    [row] = _rows(session, case.id)
    assert (row.element_id, row.name, row.topic, row.status) == ("archive", "Archive the application", "archive",
                                                                 "open")
    assert row.worker_id is None and row.retries_left is None
    [created] = _events(session, case.id, "external_task_created")
    assert created.element_id == "archive" and created.data["topic"] == "archive"


def test_a_lock_is_one_workers_until_it_expires(session, user, case, now):
    [task] = _fetch(session, user, "worker-a")
    assert (task.instance_id, task.topic, task.variables["title"]) == (case.id, "archive", "Hotel Aurora")
    assert task.lock_expires_at == now.now + LOCK
    assert _fetch(session, user, "worker-b") == []
    assert _fetch(session, user, "worker-c", ["mail"]) == []

    now.advance(minutes=5, seconds=1)
    [again] = _fetch(session, user, "worker-b")
    assert again.id == task.id

    with pytest.raises(Conflict, match="locked by worker “worker-b”") as late:
        external_tasks.complete(session, user("admin"), "worker-a", task.id, {"archived": True})
    session.rollback()
    assert "not by “worker-a”" in str(late.value)
    extended = external_tasks.extend_lock(session, user("admin"), "worker-b", task.id, timedelta(hours=1))
    session.commit()
    assert extended.lock_expires_at == now.now + timedelta(hours=1)
    now.advance(minutes=30)
    assert _fetch(session, user, "worker-a") == []


def test_completing_runs_the_case_on_with_the_variables(session, user, case):
    [task] = _fetch(session, user, "worker-a")
    done = external_tasks.complete(session, user("admin"), "worker-a", task.id, {"archived": True, "box": "A-17"})
    session.commit()
    assert done.status == "completed"
    stored = session.get(ProcessInstance, case.id, populate_existing=True)
    assert stored.status == "completed" and stored.data["archived"] is True and stored.data["box"] == "A-17"
    [row] = _rows(session, case.id)
    assert row.status == "completed" and row.worker_id == "worker-a" and row.completed_at is not None
    [event] = _events(session, case.id, "external_task_completed")
    assert event.actor_id == user("admin").id and event.element_id == "archive"
    assert event.data["worker_id"] == "worker-a" and event.data["values"] == {"archived": True, "box": "A-17"}
    assert event.data["changes"]["archived"] == [None, True]
    assert _events(session, case.id, "ended")
    with pytest.raises(Conflict, match="already completed by worker “worker-a”"):
        external_tasks.complete(session, user("admin"), "worker-a", task.id, {})


def test_variables_decide_the_way_on(session, user, case):
    [task] = _fetch(session, user, "worker-a")
    with pytest.raises(InvalidForm):
        external_tasks.complete(session, user("admin"), "worker-a", task.id, {"_secret": 1})
    session.rollback()
    external_tasks.complete(session, user("admin"), "worker-a", task.id, {"archived": False})
    session.commit()
    [by_hand] = session.scalars(select(HumanTask).where(HumanTask.instance_id == case.id))
    assert by_hand.element_id == "archive_by_hand" and by_hand.status == "open"


def test_failures_count_down_then_the_case_is_an_incident(session, user, case, now):
    [task] = _fetch(session, user, "worker-a")
    left = external_tasks.fail(session, user("admin"), "worker-a", task.id, "archive offline", 1,
                               timedelta(minutes=1))
    session.commit()
    assert (left.retries, left.incident) == (1, False)
    assert _fetch(session, user, "worker-b") == []  # not before retry_after
    now.advance(minutes=1)
    [again] = _fetch(session, user, "worker-b")
    assert again.retries == 1
    external_tasks.fail(session, user("admin"), "worker-b", task.id, "archive still offline", 0, timedelta(0))
    session.commit()

    stored = session.get(ProcessInstance, case.id, populate_existing=True)
    assert stored.status == "incident"
    [incident] = _events(session, case.id, "incident")
    assert incident.element_id == "archive" and "archive still offline" in incident.data["message"]
    assert "Archive the application" in incident.data["message"]
    assert [e.data["retries"] for e in _events(session, case.id, "external_task_failed")] == [1, 0]
    [row] = _rows(session, case.id)
    assert (row.retries_left, row.last_error, row.worker_id) == (0, "archive still offline", None)
    now.advance(hours=1)
    assert _fetch(session, user, "worker-b") == []

    case_actions.retry(session, user("owen"), case.id, "archive is back")
    session.commit()
    assert session.get(ProcessInstance, case.id, populate_existing=True).status == "running"
    [back] = _fetch(session, user, "worker-b")
    assert back.id == task.id and back.retries is None


def test_cancelling_the_case_takes_its_external_tasks_away(session, user, case):
    [task] = _fetch(session, user, "worker-a")
    case_actions.cancel(session, user("steve"), case.id, "no longer needed")
    session.commit()
    [row] = _rows(session, case.id)
    assert row.status == "cancelled"
    with pytest.raises(TaskNoLongerOpen):
        external_tasks.complete(session, user("admin"), "worker-a", task.id, {"archived": True})
    assert _fetch(session, user, "worker-b") == []


def test_only_a_user_whose_roles_grant_external_worker_may_work(session, user, case):
    with pytest.raises(NotAllowed, match="external_worker"):
        external_tasks.fetch_and_lock(session, user("steve"), "w", ["archive"], 1, LOCK)
    assert "external_worker" in user("admin").permissions


def test_an_external_service_task_needs_a_topic(session):
    assert not any(p.element_id == "archive" for p in definitions.parse_definition(XML, {"sales_rep": "S"})[1])
    untopical = XML.replace(' camunda:topic="archive"', "")
    [problem] = [p for p in definitions.parse_definition(untopical, {"sales_rep": "S"})[1] if p.element_id == "archive"]
    assert problem.severity == "error" and "camunda:topic" in problem.message
    with pytest.raises(InvalidDefinition):
        definitions.deploy(session, None, untopical)


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
def deployed(app, sqlite_url, workflow_engine):
    sessions = workflow_engine.session_factory(make_engine(sqlite_url))
    with sessions() as session:
        _deploy(session)
    return sessions


def _bearer(app, login_as, username: str):
    token = login_as(username).post("/api/v1/tokens", json={"name": "worker"}).json["token"]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client, token


def test_the_api_for_workers(app, login_as, deployed):
    started = login_as("steve").post("/api/v1/processes/external_archive/start", json={"values": {"title": "X"}})
    assert started.status_code == 201, started.json
    worker, _ = _bearer(app, login_as, "admin")
    steve, _ = _bearer(app, login_as, "steve")
    body = {"worker_id": "w1", "topics": ["archive"], "lock_duration": 60}

    refused = steve.post("/api/v1/external-tasks/fetch-and-lock", json=body)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert app.test_client().post("/api/v1/external-tasks/fetch-and-lock", json=body).status_code == 401

    [task] = worker.post("/api/v1/external-tasks/fetch-and-lock", json=body).json
    assert task["variables"]["title"] == "X" and task["instance_id"] == started.json["id"]
    assert worker.post("/api/v1/external-tasks/fetch-and-lock", json=body).json == []
    other = worker.post(f"/api/v1/external-tasks/{task['id']}/complete", json={"worker_id": "w2"})
    assert other.status_code == 409 and "“w1”" in other.json["detail"]
    assert worker.post(f"/api/v1/external-tasks/{task['id']}/extend-lock",
                       json={"worker_id": "w1", "lock_duration": 120}).status_code == 200
    failed = worker.post(f"/api/v1/external-tasks/{task['id']}/failure",
                         json={"worker_id": "w1", "message": "offline", "retries": 2, "retry_after": 0})
    assert failed.status_code == 200 and failed.json["retries"] == 2 and failed.json["incident"] is False
    [task] = worker.post("/api/v1/external-tasks/fetch-and-lock", json=body).json
    assert task["retries"] == 2
    bad = worker.post(f"/api/v1/external-tasks/{task['id']}/complete", json={"worker_id": "w1",
                                                                             "variables": {"1x": 1}})
    assert bad.status_code == 422 and "1x" in bad.json["errors"]
    done = worker.post(f"/api/v1/external-tasks/{task['id']}/complete",
                       json={"worker_id": "w1", "variables": {"archived": True}})
    assert done.status_code == 200 and done.json["status"] == "completed"
    case = login_as("steve").get(f"/api/v1/cases/{task['instance_id']}").json
    assert case["status"] == "completed" and case["data"]["archived"] is True
    assert worker.post("/api/v1/external-tasks/999999/complete", json={"worker_id": "w1"}).status_code == 404

    paths = app.test_client().get("/api/v1/openapi.json").json["paths"]
    assert {"/api/v1/external-tasks/fetch-and-lock", "/api/v1/external-tasks/{task_id}/complete",
            "/api/v1/external-tasks/{task_id}/failure", "/api/v1/external-tasks/{task_id}/extend-lock"} <= set(paths)


def test_the_example_worker_completes_a_task_against_a_live_server(app, login_as, deployed):
    started = login_as("steve").post("/api/v1/processes/external_archive/start", json={"values": {"title": "Y"}})
    _, token = _bearer(app, login_as, "admin")
    spec = importlib.util.spec_from_file_location("external_worker", ROOT / "examples" / "external_worker.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = example.work_once(f"http://127.0.0.1:{server.server_port}", token, "example-worker")
    finally:
        server.shutdown()
        thread.join()
    assert done == 1
    with deployed() as session:
        stored = session.get(ProcessInstance, started.json["id"])
        assert stored.status == "completed" and stored.data["archived"] is True
        assert users.user_by_name(session, "admin").id == session.scalar(
            select(Event.actor_id).where(Event.kind == "external_task_completed"))
