"""Separation of duties, login limits, secrets, HTTPS cookies, and fuzzed form submissions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine import actions, clock, inbox, read_models, users
from engine.db import Event, HumanTask
from engine.errors import InvalidForm, LoginLocked, NotAllowed
from web import create_app
from web.cli import main

PLAN = {"title": "Plan 2027", "plan_year": "2027", "marketing_strategy": "Grow", "sales_target": "100",
        "total_budget": "900000", "ad_expense_q1": "1", "ad_expense_q2": "1", "ad_expense_q3": "1",
        "ad_expense_q4": "1"}


@pytest.fixture
def mona(session):
    """Holds research & planning *and* marketing manager: she could approve her own plan."""
    user = users.ensure_user(session, "mona", "Mona Berg", "demo", ["research_planning", "marketing_manager"])
    session.commit()
    return user


def test_the_requester_may_not_approve_her_own_plan(session, user, mona):
    instance = actions.start_process(session, mona, "marketing_plan_approval", PLAN)
    session.commit()
    [review] = [t for t in inbox.inbox(session, mona).available if t.instance_id == instance.id]
    with pytest.raises(NotAllowed) as caught:
        actions.claim(session, mona, review.id)
    assert "separation of duties" in str(caught.value)
    with pytest.raises(NotAllowed):
        actions.complete_task(session, mona, review.id, {"mm_review_decision": "approve", "gm_threshold": "1"})
    view = read_models.task_view(session, mona, review.id)
    assert view.separated and not view.can_claim and not view.can_complete
    actions.claim(session, user("mark"), review.id)
    session.commit()
    assert "mona" not in [u.username for u in actions.delegation_candidates(session, session.get(HumanTask, review.id))]
    with pytest.raises(InvalidForm):
        actions.delegate(session, user("mark"), review.id, "mona")
    actions.complete_task(session, user("mark"), review.id, {"mm_review_decision": "approve", "gm_threshold": "1"})
    session.commit()


def test_separation_of_duties_over_http(app, login_as, mona_http):
    client = login_as("mona")
    response = client.post("/processes/marketing_plan_approval/start", data=PLAN)
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    task_id = int(page.split('data-task-id="')[1].split('"')[0])
    assert 'id="separated"' in client.get(f"/tasks/{task_id}").get_data(as_text=True)
    refused = client.post(f"/tasks/{task_id}/claim")
    assert refused.status_code == 403 and "separation of duties" in refused.get_data(as_text=True)


@pytest.fixture
def mona_http(app):
    from web.database import db

    with app.app_context():
        users.ensure_user(db(), "mona", "Mona Berg", "demo", ["research_planning", "marketing_manager"])
        db().commit()


def test_failures_hold_up_one_address_at_one_account_and_a_success_resets(session, user):
    moment = [datetime(2026, 11, 26, 9, 0)]
    clock.set_clock(lambda: moment[0])
    try:
        assert users.authenticate(session, "mark", "demo", "198.51.100.1") is not None
        for _ in range(users.FREE_FAILURES):
            moment[0] += timedelta(seconds=5)
            assert users.authenticate(session, "mark", "guess", "198.51.100.1") is None
        session.commit()
        with pytest.raises(LoginLocked) as caught:
            users.authenticate(session, "mark", "demo", "198.51.100.1")
        assert caught.value.until == moment[0] + users.FIRST_DELAY
        session.commit()
        assert users.authenticate(session, "mark", "demo", "198.51.100.2") is not None, "other addresses are free"
        moment[0] = caught.value.until + timedelta(seconds=1)
        assert users.authenticate(session, "mark", "demo", "198.51.100.1") is not None, "open again after the wait"
        session.commit()
        assert users.authenticate(session, "mark", "guess", "198.51.100.1") is None, "a success resets the count"
        assert users.authenticate(session, "mark", "demo", "198.51.100.1") is not None
        session.commit()
    finally:
        clock.set_clock(None)
    kinds = session.scalars(select(Event.kind).where(Event.kind.in_(["login", "login_failed", "login_locked"]))
                            .order_by(Event.id)).all()
    assert kinds.count("login_failed") == 4 and kinds.count("login_locked") == 1 and kinds.count("login") == 4


def test_a_limited_login_over_http_keeps_the_username(client):
    for _ in range(users.FREE_FAILURES):
        client.post("/login", data={"username": "sam", "password": "nope"})
    locked = client.post("/login", data={"username": "sam", "password": "demo"})
    page = locked.get_data(as_text=True)
    assert locked.status_code == 429 and "Too many failed logins" in page and 'value="sam"' in page


def test_secret_key_is_required_outside_demo_mode(sqlite_url, monkeypatch):
    monkeypatch.delenv("DEPTFLOW_SECRET_KEY", raising=False)
    monkeypatch.delenv("DEPTFLOW_DEMO", raising=False)
    with pytest.raises(RuntimeError, match="DEPTFLOW_SECRET_KEY is not set"):
        create_app({"DATABASE_URL": sqlite_url})
    result = CliRunner().invoke(main, ["serve", "--port", "1"])
    assert result.exit_code == 2 and "DEPTFLOW_SECRET_KEY is not set" in result.output


def test_cookies_are_secure_behind_https(sqlite_url, monkeypatch):
    monkeypatch.setenv("DEPTFLOW_HTTPS", "1")
    app = create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "x", "WTF_CSRF_ENABLED": False})
    response = app.test_client().post("/login", data={"username": "mark", "password": "demo"},
                                      headers={"X-Forwarded-Proto": "https"})
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    app.extensions["deptflow_engine"].dispose()


FIELDS = ["severity", "confirmed_type", "classification_notes", "extra", "csrf_token", "", "severity[]"]
VALUES = st.one_of(st.text(max_size=300), st.sampled_from(["low", "quality", "critical", "", " ", "\x00", "ä" * 5000]),
                   st.integers().map(str), st.just("x" * 30_000))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=20), VALUES, max_size=6))
def test_fuzzed_completions_get_a_4xx_with_messages_and_save_nothing(fuzz_case, form):
    client, task_id, count_events = fuzz_case
    before = count_events()
    response = client.post(f"/tasks/{task_id}/complete", data=form)
    assert response.status_code in (302, 409, 422), response.status_code
    if response.status_code == 422:
        assert "field-error" in response.get_data(as_text=True)
        assert count_events() == before, "nothing half-saved"


@pytest.fixture
def fuzz_case(app, login_as):
    cathy = login_as("cathy")
    cathy.post("/processes/customer_complaint/start", data={
        "title": "Fuzz", "customer_name": "W", "customer_contact": "c", "product_name": "p",
        "problem_type": "quality", "complaint_description": "d"})
    task_id = int(cathy.get("/").get_data(as_text=True).split('data-task-id="')[1].split('"')[0])
    sessions = app.extensions["deptflow_sessions"]

    def count_events() -> int:
        with sessions() as session:
            return session.scalar(select(func.count()).select_from(Event).where(Event.task_id == task_id))

    with sessions() as session:
        assert session.get(HumanTask, task_id).status == "open"
    return cathy, task_id, count_events
