"""The REST API: problems for every error, idempotent starts, the task flow, case actions, the auditors'
search, API tokens (scope, expiry, revocation, attribution) and CSRF only where a cookie authenticates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from engine import api_tokens, audit, clock, users
from engine.db import ApiToken, Event, ProcessInstance
from web import create_app
from workflows.catalogue import DEMO_PASSWORD

PROCESS = "engineering_drawing_application"
DRAWING = {"title": "Drawings for Hotel Aurora", "customer_name": "Hotel Aurora", "project_name": "Lobby refit",
           "drawings_needed_by": "2027-01-31", "product_lines": "Lounge chairs, tables", "quantity": "40"}
REGISTRATION = {"registration_number": "ED-2026-014", "registration_date": "2026-11-26"}
PROBLEM = "application/problem+json"


def _token(client, **body) -> str:
    response = client.post("/api/v1/tokens", json={"name": "test", **body})
    assert response.status_code == 201, response.json
    return response.json["token"]


@pytest.fixture
def bearer(app, login_as):
    """An API client for a demo user with a token of all their roles (no cookie): ``bearer("steve")``."""

    def make(username: str, **body):
        token = _token(login_as(username), **body)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make


def _assert_problem(response, status: int):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.json["status"] == status and response.json["title"] and response.json["detail"]
    return response.json


def _start(client, key: str | None = None, **extra):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING, **extra}, headers=headers)


# --- the document and the errors -------------------------------------------------------------


def test_the_openapi_document_is_generated_and_browsable(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    assert {"/api/v1/processes/{key}/start", "/api/v1/tasks/{task_id}/complete", "/api/v1/cases/{instance_id}/events",
            "/api/v1/audit/cases", "/api/v1/tokens", "/healthz", "/readyz"} <= set(document["paths"])
    default = document["components"]["responses"]["DEFAULT_ERROR"]
    assert PROBLEM in default["content"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"swagger-ui-bundle.js" in page.data


def test_every_error_is_a_problem(client, login_as):
    _assert_problem(client.get("/api/v1/tasks"), 401)
    assert client.get("/api/v1/tasks").headers["WWW-Authenticate"].startswith("Bearer")
    steve = login_as("steve")
    _assert_problem(steve.get("/api/v1/nowhere"), 404)
    _assert_problem(steve.get("/api/v1/tasks/999999"), 404)
    _assert_problem(steve.get("/api/v1/tasks/99999999999"), 404)
    not_allowed = steve.get(f"/api/v1/processes/{PROCESS}/start")
    _assert_problem(not_allowed, 405)
    assert "POST" in not_allowed.headers["Allow"]
    _assert_problem(login_as("grace").post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING}), 403)
    bad = _assert_problem(steve.post(f"/api/v1/processes/{PROCESS}/start", json={"values": {"title": "x"}}), 422)
    assert set(bad["errors"]) >= {"customer_name", "project_name"}
    wrong_type = _assert_problem(steve.post(f"/api/v1/processes/{PROCESS}/start", json={"values": 3}), 422)
    assert "values" in wrong_type["errors"]
    _assert_problem(steve.post(f"/api/v1/processes/{PROCESS}/start", data="{", content_type="application/json"),
                    400)
    assert _assert_problem(steve.get("/api/v1/tasks?per_page=0"), 422)["errors"]["per_page"]
    # the pages keep their HTML errors
    assert steve.get("/nowhere").mimetype == "text/html"


def test_health_checks(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready"}


# --- starting, working, following ------------------------------------------------------------


def test_a_retried_start_with_the_same_idempotency_key_starts_one_case(app, login_as):
    steve = login_as("steve")
    first = _start(steve, "order-4711", business_key="CRM-4711")
    assert first.status_code == 201 and first.json["replayed"] is False
    assert first.headers["Location"].endswith(f"/api/v1/cases/{first.json['id']}")
    assert first.json["business_key"] == "CRM-4711"
    again = _start(steve, "order-4711", business_key="CRM-4711")
    assert again.status_code == 200 and again.json["id"] == first.json["id"] and again.json["replayed"] is True
    assert {k: v for k, v in again.json.items() if k != "replayed"} == {
        k: v for k, v in first.json.items() if k != "replayed"}  # the same answer: its tasks are still open
    assert again.headers["Location"] == first.headers["Location"]
    other = _assert_problem(_start(steve, "order-4711", business_key="CRM-4712"), 422)
    assert "Idempotency-Key" in other["errors"]
    assert _start(steve, "order-4712").json["id"] != first.json["id"]
    assert _start(steve).json["id"] != _start(steve).json["id"]  # no key: every request starts a case
    assert login_as("sara").post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING},
                                 headers={"Idempotency-Key": "order-4711"}).status_code == 201  # keys are per user
    with app.extensions["deptflow_sessions"]() as session:
        same = select(ProcessInstance).where(ProcessInstance.business_key == "CRM-4711")
        assert len(session.scalars(same).all()) == 1


def test_a_start_answers_with_what_it_made_ready_without_reading_the_case_back(app, bearer):
    steve = bearer("steve")
    statements: list[str] = []
    listener = lambda _conn, _cursor, statement, *_: statements.append(statement)  # noqa: E731
    sa_event.listen(app.extensions["deptflow_engine"], "before_cursor_execute", listener)
    try:
        _start(steve)  # the first start of a process parses its diagram
        statements.clear()
        started = _start(steve, business_key="CRM-9")
    finally:
        sa_event.remove(app.extensions["deptflow_engine"], "before_cursor_execute", listener)
    assert started.status_code == 201
    body = started.json
    assert body["status"] == "running" and body["business_key"] == "CRM-9" and body["process_key"] == PROCESS
    assert [t["element_id"] for t in body["tasks"]] == ["register_application"]
    assert started.headers["Location"].endswith(f"/api/v1/cases/{body['id']}")
    # the answer comes from the start itself: its writes are the last statements (was: 6 reads after them)
    last_write = max(i for i, s in enumerate(statements) if s.lstrip().upper().startswith(("INSERT", "UPDATE")))
    assert last_write == len(statements) - 1, statements[last_write:]
    # 10: the token with its owner and roles, the process; then the writes (case, task, its role, the notices
    # in one INSERT … SELECT, the sealed events); the token's last use is written once a minute, not here
    assert len(statements) <= 10, statements
    case = steve.get(started.headers["Location"]).json
    assert [t["id"] for t in case["tasks"]] == [t["id"] for t in body["tasks"]]


def test_a_bearer_completion_reads_twice_and_writes_without_reading_the_chain(app, bearer):
    clara = bearer("clara")
    case = _start(bearer("steve")).json
    statements: list[str] = []
    listener = lambda _conn, _cursor, statement, *_: statements.append(" ".join(statement.split()))  # noqa: E731
    sa_event.listen(app.extensions["deptflow_engine"], "before_cursor_execute", listener)
    try:
        clara.get("/api/v1/tasks")  # the token's first use is written now, not during the completion
        statements.clear()
        done = clara.post(f"/api/v1/tasks/{case['tasks'][0]['id']}/complete", json={"values": REGISTRATION})
    finally:
        sa_event.remove(app.extensions["deptflow_engine"], "before_cursor_execute", listener)
    assert done.status_code == 200 and done.json["created"], done.json
    assert not done.headers.get("Set-Cookie"), "a bearer request has no cookie session"
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 2 and reads[0].startswith("SELECT api_tokens.id"), reads  # the token; the task
    assert not any("audit_seq, process_instances.audit_hash" in s and s.startswith("SELECT") for s in statements)
    with app.extensions["deptflow_sessions"]() as session:
        assert audit.verify(session).ok


def test_claim_delegate_complete_and_follow_the_case(login_as):
    steve = login_as("steve")
    case = _start(steve).json
    clara = login_as("clara")
    queue = clara.get("/api/v1/tasks").json["available"]
    [task] = [t for t in queue["items"] if t["instance_id"] == case["id"]]
    detail = clara.get(f"/api/v1/tasks/{task['id']}").json
    assert detail["can_claim"] and {f["id"] for f in detail["form"]} >= set(REGISTRATION)
    assert clara.post(f"/api/v1/tasks/{task['id']}/claim").json["assignee"] == "clara"
    assert clara.post(f"/api/v1/tasks/{task['id']}/unclaim").json["assignee"] is None
    clara.post(f"/api/v1/tasks/{task['id']}/claim")
    bad = _assert_problem(clara.post(f"/api/v1/tasks/{task['id']}/delegate", json={"to": "steve"}), 422)
    assert "to" in bad["errors"]
    _assert_problem(clara.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": {}}), 422)
    done = clara.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": REGISTRATION})
    assert done.status_code == 200 and done.json["created"]
    late = _assert_problem(clara.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": REGISTRATION}), 409)
    assert "already completed by Clara" in late["detail"]
    followed = steve.get(f"/api/v1/cases/{case['id']}").json
    assert [t["status"] for t in followed["tasks"]][:1] == ["completed"]
    kinds = [e["kind"] for e in steve.get(f"/api/v1/cases/{case['id']}/events").json["events"]]
    assert kinds[:2] == ["started", "task_created"] and "completed" in kinds
    _assert_problem(login_as("dora").get(f"/api/v1/cases/{case['id']}"), 403)


def test_case_actions_need_a_reason_and_the_right_role(login_as):
    steve = login_as("steve")
    case = _start(steve).json
    assert "reason" in _assert_problem(steve.post(f"/api/v1/cases/{case['id']}/cancel", json={}), 422)["errors"]
    _assert_problem(steve.post(f"/api/v1/cases/{case['id']}/suspend", json={"reason": "hold"}), 403)
    admin = login_as("admin")
    assert admin.post(f"/api/v1/cases/{case['id']}/suspend", json={"reason": "hold"}).json["status"] == "suspended"
    _assert_problem(admin.post(f"/api/v1/cases/{case['id']}/suspend", json={"reason": "hold"}), 409)
    assert admin.post(f"/api/v1/cases/{case['id']}/resume", json={"reason": "go"}).json["status"] == "running"
    assert steve.post(f"/api/v1/cases/{case['id']}/cancel", json={"reason": "wrong"}).json["status"] == "cancelled"


def test_only_auditors_search_every_case(login_as):
    _start(login_as("steve"), business_key="CRM-1")
    alice = login_as("alice")
    found = alice.get("/api/v1/audit/cases?business_key=CRM-1").json
    assert found["total"] == 1 and found["items"][0]["started_by"] == "steve"
    assert "started_from" in _assert_problem(alice.get("/api/v1/audit/cases?started_from=soon"), 422)["errors"]
    for version in ("7³", "99999999999"):  # schemathesis found the first: a digit int() does not read
        assert "version" in _assert_problem(alice.get(f"/api/v1/audit/cases?version={version}"), 422)["errors"]
    _assert_problem(login_as("steve").get("/api/v1/audit/cases"), 403)


# --- tokens ----------------------------------------------------------------------------------


def test_a_token_acts_as_its_owner_and_is_audited_as_the_owner(app, bearer):
    steve = bearer("steve")
    case = _start(steve).json
    assert steve.get(f"/api/v1/cases/{case['id']}").json["started_by"] == "steve"
    assert steve.get("/api/v1/tokens").json[0]["last_used_at"] is not None
    with app.extensions["deptflow_sessions"]() as session:
        started = session.scalar(select(Event).where(Event.instance_id == case["id"], Event.kind == "started"))
        assert started.actor.username == "steve"
        assert session.scalar(select(Event).where(Event.kind == "api_token_created")).actor.username == "steve"
        assert all(len(t.token_hash) == 64 and not t.token_hash.startswith("dft_")
                   for t in session.scalars(select(ApiToken)))


def test_a_token_is_no_wider_than_its_scope(login_as, bearer):
    alice = login_as("alice")
    _assert_problem(alice.post("/api/v1/tokens", json={"name": "x", "roles": ["admin"]}), 422)
    _assert_problem(alice.post("/api/v1/tokens", json={"name": "x", "days": 400}), 422)
    admin = bearer("admin", roles=["admin"])
    assert admin.get("/api/v1/audit/cases").status_code == 200
    narrow = bearer("mark", roles=["marketing_manager"])
    _assert_problem(narrow.post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING}), 403)
    # a token makes tokens within its own scope only
    _assert_problem(narrow.post("/api/v1/tokens", json={"name": "wider", "roles": ["marketing_manager", "x"]}), 422)
    assert narrow.post("/api/v1/tokens", json={"name": "same"}).json["roles"] == ["marketing_manager"]


def test_a_revoked_expired_or_unknown_token_is_refused(app, login_as, bearer, monkeypatch):
    steve = login_as("steve")
    made = steve.post("/api/v1/tokens", json={"name": "ci", "days": 1}).json
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {made['token']}"
    assert client.get("/api/v1/tasks").status_code == 200
    later = clock.utcnow() + timedelta(days=1, seconds=1)
    monkeypatch.setattr(api_tokens, "utcnow", lambda: later)
    _assert_problem(client.get("/api/v1/tasks"), 401)
    monkeypatch.undo()
    assert client.get("/api/v1/tasks").status_code == 200
    assert steve.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
    _assert_problem(client.get("/api/v1/tasks"), 401)
    _assert_problem(login_as("sara").delete(f"/api/v1/tokens/{made['id']}"), 404)  # another's token
    for header in ("Bearer dft_nope", "Bearer ", "Basic c3RldmU6ZGVtbw==", made["token"]):
        anonymous = app.test_client()
        anonymous.environ_base["HTTP_AUTHORIZATION"] = header
        _assert_problem(anonymous.get("/api/v1/tasks"), 401)


def test_a_deactivated_users_tokens_stop_working(app, bearer):
    steve = bearer("steve")
    with app.extensions["deptflow_sessions"]() as session:
        users.user_by_name(session, "steve").active = False
        session.commit()
    _assert_problem(steve.get("/api/v1/tasks"), 401)


def test_an_invalid_token_never_falls_back_to_the_session_cookie(login_as):
    steve = login_as("steve")
    _assert_problem(steve.get("/api/v1/tasks", headers={"Authorization": "Bearer dft_forged"}), 401)


def test_the_tokens_page_shows_a_new_token_once(login_as):
    steve = login_as("steve")
    assert steve.get("/account/tokens").status_code == 200
    made = steve.post("/account/tokens", data={"name": "laptop", "roles": ["sales_rep"], "days": "7"})
    assert made.status_code == 201 and b"dft_" in made.data
    listed = steve.get("/account/tokens").get_data(as_text=True)
    assert "laptop" in listed and listed.count("dft_") == 1  # only the prefix
    assert steve.post("/account/tokens", data={"name": "", "days": "7"}).status_code == 422
    token_id = steve.get("/api/v1/tokens").json[0]["id"]
    assert steve.post(f"/account/tokens/{token_id}/revoke").status_code == 302
    assert steve.get("/api/v1/tokens").json == []


# --- CSRF: only bearer requests are exempt ---------------------------------------------------


@pytest.fixture
def csrf_app(sqlite_url, workflow_engine):
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": True,
                      "WORKFLOW_ENGINE": workflow_engine})
    yield app
    app.extensions["deptflow_engine"].dispose()


def _csrf_login(app, username: str):
    import re

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": token})
    return client, token


def test_cookie_requests_need_the_csrf_token_and_bearer_requests_do_not(csrf_app):
    steve, token = _csrf_login(csrf_app, "steve")
    refused = _assert_problem(steve.post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING}), 400)
    assert "CSRF" in refused["detail"]
    started = steve.post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING},
                         headers={"X-CSRFToken": token})
    assert started.status_code == 201
    secret = steve.post("/api/v1/tokens", json={"name": "ci"}, headers={"X-CSRFToken": token}).json["token"]
    bearer = csrf_app.test_client()
    response = bearer.post(f"/api/v1/processes/{PROCESS}/start", json={"values": DRAWING},
                           headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 201
    # the header exempts API requests only: the pages still want their form token
    assert steve.post("/requests", headers={"Authorization": f"Bearer {secret}"}).status_code in (400, 405)
