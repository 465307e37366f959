"""Issue 13, round two: sessions that end, login limits per address, CSV injection, out-of-range
ids and dates, list values in case data, and who may download a diagram."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine import actions, history, process_versions, users
from engine.db import Event, HumanTask, ProcessDefinition, ProcessInstance
from engine.errors import LoginLocked, NotAllowed
from web import create_app
from web.params import MAX_ID
from workflows.catalogue import DEMO_PASSWORD

T0 = datetime(2026, 12, 1, 9, 0)
ATTACKER = "203.0.113.9"
OFFICE = "192.0.2.10"
COMPLAINT = {"customer_name": "J. Weber", "customer_contact": "0171", "product_name": "Oak chair",
             "problem_type": "quality", "complaint_description": "Loose leg"}
NEW_PASSWORD = "correct horse battery"


def _from(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _login(client, username: str, password: str = DEMO_PASSWORD):
    return client.post("/login", data={"username": username, "password": password})


def _sessions_of(app):
    return app.extensions["deptflow_sessions"]


# --- 5. sessions that end -------------------------------------------------------------------


def test_a_cookie_replayed_after_logout_gets_the_login_page(app, login_as):
    mark = login_as("mark")
    saved = mark.get_cookie("session").value
    assert mark.get("/").status_code == 200
    assert mark.post("/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", saved)
    response = replay.get("/")
    assert response.status_code == 302 and response.location.startswith("/login")


def test_logout_ends_every_session_of_the_user(app, login_as):
    laptop, phone, colleague = login_as("mark"), login_as("mark"), login_as("clara")
    laptop.post("/logout")
    assert phone.get("/").status_code == 302, "the other browser is logged out too"
    assert colleague.get("/").status_code == 200, "other users keep their sessions"
    with _sessions_of(app)() as session:
        ended = session.scalars(select(Event).where(Event.kind == "sessions_ended")).all()
    assert [(e.actor.username, e.data["reason"]) for e in ended] == [("mark", "logout")]


def test_a_password_change_ends_the_old_sessions_and_keeps_this_one(app, login_as):
    here, elsewhere = login_as("mark"), login_as("mark")
    saved = here.get_cookie("session").value
    assert 'href="/account/password"' in here.get("/").get_data(as_text=True), "linked from the nav"
    response = here.post("/account/password", data={"current": DEMO_PASSWORD, "new": NEW_PASSWORD,
                                                    "repeated": NEW_PASSWORD})
    assert response.status_code == 302
    assert here.get("/").status_code == 200, "the browser that changed it stays logged in"
    assert elsewhere.get("/").status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/").status_code == 302, "the cookie from before the change no longer works"
    assert _login(app.test_client(), "mark").status_code == 401
    assert _login(app.test_client(), "mark", NEW_PASSWORD).status_code == 302
    with _sessions_of(app)() as session:
        kinds = session.scalars(select(Event.kind).where(Event.actor.has(username="mark"))
                                .order_by(Event.id)).all()
    assert "password_changed" in kinds and "sessions_ended" in kinds


@pytest.mark.parametrize(("form", "errors"), [
    ({"current": "wrong", "new": NEW_PASSWORD, "repeated": NEW_PASSWORD}, {"current": "not your current password"}),
    ({"current": DEMO_PASSWORD, "new": "short", "repeated": "short"}, {"new": "at least 10 characters"}),
    ({"current": DEMO_PASSWORD, "new": NEW_PASSWORD, "repeated": NEW_PASSWORD + "!"}, {"repeated": "differ"}),
    ({"current": "", "new": "", "repeated": ""}, {"current": "not your current password", "new": "at least"}),
])
def test_the_password_form_says_what_is_wrong_per_field(app, login_as, form, errors):
    mark = login_as("mark")
    response = mark.post("/account/password", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    shown = dict(re.findall(r'<small class="field-error" id="(\w+)-error">([^<]*)</small>', page))
    assert set(shown) == set(errors)
    for field, text in errors.items():
        assert text in shown[field]
    assert mark.get("/").status_code == 200, "nothing changed, the session goes on"
    assert _login(app.test_client(), "mark").status_code == 302


def test_deactivation_ends_the_session_for_good(app, login_as):
    dora, admin = login_as("dora"), login_as("admin")
    saved = dora.get_cookie("session").value
    with _sessions_of(app)() as session:
        dora_id = users.user_by_name(session, "dora").id
    assert admin.post(f"/admin/users/{dora_id}", data={"roles": "dealer"}).status_code == 302
    assert dora.get("/").status_code == 302
    assert admin.post(f"/admin/users/{dora_id}", data={"roles": "dealer", "active": "on"}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("session", saved)
    assert replay.get("/").status_code == 302, "reactivating does not bring the old session back"
    assert _login(app.test_client(), "dora").status_code == 302


# --- 6. login limits per (account, address) ---------------------------------------------------


def test_failures_from_another_address_do_not_stop_the_real_user(app, now):
    attacker = _from(app, ATTACKER)
    statuses = [_login(attacker, "mark", f"guess{n}").status_code for n in range(12)]
    assert statuses[:3] == [401] * 3 and set(statuses[3:]) == {429}, statuses
    refused = _login(attacker, "mark")
    assert refused.status_code == 429 and "Too many failed logins" in refused.get_data(as_text=True)
    assert _login(_from(app, OFFICE), "mark").status_code == 302, "the real user logs in from their address"
    with _sessions_of(app)() as session:
        failed = session.scalars(select(Event).where(Event.kind == "login_failed")).all()
        locked = session.scalars(select(Event).where(Event.kind == "login_locked")).all()
        login = session.scalars(select(Event).where(Event.kind == "login")).all()
    assert {e.data["address"] for e in failed} == {ATTACKER} and len(failed) == 3
    assert len(locked) == 1, "one audit event per limit, not one per refused attempt"
    assert locked[0].data["address"] == ATTACKER and locked[0].data["scope"] == "account"
    assert login[-1].data["address"] == OFFICE


def test_the_wait_grows_per_account_and_address(session, now):
    def attempt(password: str = "guess", address: str = ATTACKER, username: str = "sam"):
        result = users.authenticate(session, username, password, address)
        session.commit()
        return result

    for _ in range(users.FREE_FAILURES):
        assert attempt() is None
    waits = []
    for _ in range(7):
        with pytest.raises(LoginLocked) as caught:
            attempt(DEMO_PASSWORD)
        session.rollback()
        waits.append(caught.value.until - now.now)
        now.now = caught.value.until + timedelta(seconds=1)
        assert attempt() is None
    assert waits == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480, 900, 900)]
    assert attempt(DEMO_PASSWORD, address=OFFICE) is not None, "another address is not held up"
    assert attempt(address=ATTACKER, username="mark") is None, "nor another account from the same address"
    assert users.pair_delay(2) == timedelta(0) and users.pair_delay(100) == users.MAX_DELAY
    now.advance(minutes=16)
    assert attempt(DEMO_PASSWORD) is not None
    assert attempt() is None, "a success from the address starts the count again"


def test_one_address_failing_at_many_accounts_is_held_up(session, now, monkeypatch):
    monkeypatch.setattr(users, "ADDRESS_CEILING", 5)
    for name in ("mark", "amy", "rita", "cathy", "nobody"):
        assert users.authenticate(session, name, "guess", ATTACKER) is None
        session.commit()
    with pytest.raises(LoginLocked) as caught:
        users.authenticate(session, "clara", DEMO_PASSWORD, ATTACKER)
    assert caught.value.until == T0 + users.ADDRESS_WINDOW
    session.commit()
    assert users.authenticate(session, "clara", DEMO_PASSWORD, OFFICE) is not None
    [locked] = session.scalars(select(Event).where(Event.kind == "login_locked")).all()
    assert locked.data["scope"] == "address"
    limits = users.login_limits(session)
    assert [(limit.username, limit.address) for limit in limits] == [(None, ATTACKER)]


def test_an_administrator_lifts_a_limit(app, login_as, now):
    attacker = _from(app, ATTACKER)
    for n in range(4):
        _login(attacker, "sam", f"guess{n}")
    assert _login(attacker, "sam").status_code == 429
    admin = login_as("admin")
    now.advance(seconds=1)
    page = admin.get("/admin/users").get_data(as_text=True)
    assert ATTACKER in page and 'id="login-limits"' in page
    assert login_as("sam").post("/admin/login-limits/lift", data={"address": ATTACKER}).status_code == 403
    response = admin.post("/admin/login-limits/lift", data={"address": ATTACKER, "username": "sam"})
    assert response.status_code == 302
    assert _login(attacker, "sam").status_code == 302
    assert "None: no address is waiting" in admin.get("/admin/users").get_data(as_text=True)
    with _sessions_of(app)() as session:
        [lifted] = session.scalars(select(Event).where(Event.kind == "login_limit_lifted")).all()
    assert lifted.actor.username == "admin" and lifted.data == {"address": ATTACKER, "username": "sam"}


# --- 7. CSV formula injection ----------------------------------------------------------------


DANGEROUS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tleading tab", "\rcarriage"]


def test_to_csv_neutralises_every_formula_prefix():
    events = [{"chain": 1, "seq": 1, "at": "2026-12-01T09:00:00", "kind": "started", "instance_id": 1,
               "actor_id": 1, "task_id": None, "element_id": text, "data": {"x": text}, "prev_hash": "0",
               "hash": "1", "actor": text} for text in DANGEROUS]
    rows = list(csv.reader(io.StringIO(history.to_csv([{"id": 1, "title": "-minus", "events": events}]))))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'-minus" in cells
    for text in DANGEROUS:
        assert "'" + text in cells and text not in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "-5" not in cells and rows[1][0] == "1", "numbers are left alone"


def test_csv_exports_over_http_are_neutralised(login_as):
    cathy = login_as("cathy")
    response = cathy.post("/processes/customer_complaint/start",
                          data={**COMPLAINT, "title": '=HYPERLINK("http://evil.example","click")',
                                "customer_name": "@SUM(1+1)"})
    instance_id = int(response.location.rsplit("/", 1)[1])
    alice = login_as("alice")
    for url in (f"/history/{instance_id}.csv", "/audit/export.csv?starter=cathy"):
        body = alice.get(url).get_data(as_text=True)
        cells = [cell for row in list(csv.reader(io.StringIO(body)))[1:] for cell in row]
        assert cells, url
        assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in cells, url
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], url


# --- 8. out-of-range ids, pages and dates; lists in case data -----------------------------------


def _int_rules() -> list[tuple[str, str]]:
    """(method, rule) of every route with an ``int`` converter, read from the app's URL map."""
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://", "SECRET_KEY": "x"})
    found = []
    for rule in app.url_map.iter_rules():
        if any(type(c).__name__ == "BoundedIntConverter" for c in rule._converters.values()):
            method = next(m for m in ("GET", "POST", "DELETE", "PUT", "PATCH") if m in rule.methods)
            found.append((method, rule.rule))
    app.extensions["deptflow_engine"].dispose()
    return sorted(found)


INT_RULES = _int_rules()


def test_every_int_route_is_listed():
    """The parametrised test below covers every route with an id in its path, the API's included."""
    assert ("GET", "/history/<int:instance_id>") in INT_RULES
    assert any(rule.startswith("/api/v1/") for _method, rule in INT_RULES)
    assert len(INT_RULES) >= 20


def _fill(rule: str, number: int) -> str:
    path = re.sub(r"<int:\w+>", str(number), rule)
    path = re.sub(r"<any\(([^,)]+)[^)]*\):\w+>", r"\1", path)
    return re.sub(r"<(?:\w+:)?\w+>", "customer_complaint", path)


@pytest.mark.parametrize(("method", "rule"), INT_RULES)
@pytest.mark.parametrize("number", [MAX_ID, MAX_ID + 1, 2**63, 99999999999999999999])
def test_ids_beyond_the_database_range_are_not_found(app, login_as, method, rule, number):
    admin = login_as("admin")
    response = admin.open(_fill(rule, number), method=method, data={"reason": "x", "to": "mark"})
    if rule.startswith("/api/"):  # the API answers with a problem document; a body it cannot take first is a 422
        assert response.status_code in (404, 422), (rule, response.status_code)
        assert response.mimetype == "application/problem+json" and response.get_json()["status"] == response.status_code
        return
    assert response.status_code == 404, (rule, response.status_code)
    assert "error-message" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", [
    "/?mine=99999999999999999999", "/?queue=9223372036854775807", "/?mine=2147483648", "/?queue=" + "9" * 5000,
    "/audit?page=2147483648",
    "/audit?page=99999999999999999999",
    "/modeler/customer_complaint/edit?draft=99999999999999999999",
    "/modeler/customer_complaint/diff?b=99999999999999999999", "/modeler/customer_complaint/diff?a=x",
    "/modeler/customer_complaint/migrate?from=99999999999999999999",
    "/modeler/customer_complaint/migrate?from=1&to=9223372036854775808",
])
def test_int_query_args_out_of_range_are_a_400_with_a_message(login_as, url):
    response = login_as("admin").get(url)
    assert response.status_code == 400, response.status_code
    assert "must be a whole number" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/audit?started_to=9999-12-31", "/audit?started_from=9999-12-31",
                                 "/audit/export.csv?started_to=9999-12-31",
                                 "/audit/export.json?started_to=9999-12-31&started_from=nonsense"])
def test_dates_the_search_cannot_reach_are_refused_with_a_message(login_as, url):
    response = login_as("alice").get(url)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Enter a date before 9999-12-31." in page


def test_a_list_or_nested_dict_in_case_data_renders(app, login_as):
    cathy = login_as("cathy")
    response = cathy.post("/processes/customer_complaint/start", data={**COMPLAINT, "title": "Lists"})
    instance_id = int(response.location.rsplit("/", 1)[1])
    with _sessions_of(app)() as session:
        instance = session.get(ProcessInstance, instance_id)
        instance.data = {**instance.data, "problem_type": ["quality", "delivery"], "parts": {"leg": [1, 2]}}
        started = session.scalar(select(Event).where(Event.instance_id == instance_id, Event.kind == "started"))
        task = session.scalar(select(HumanTask).where(HumanTask.instance_id == instance_id))
        session.commit()
        assert started is not None
    assert cathy.get(f"/history/{instance_id}").status_code == 200
    for url in (f"/instances/{instance_id}", f"/tasks/{task.id}"):
        response = cathy.get(url)
        assert response.status_code == 200, url
        page = response.get_data(as_text=True)
        assert "quality, delivery" in page and "<td>{\"leg\": [1, 2]}</td>" in page, url


# --- 9. diagram downloads ---------------------------------------------------------------------


def test_who_may_download_a_diagram(app, session, user):
    """Starters, the owner role, task roles, modellers, auditors and readers of every case, and who took part."""
    definition = session.scalar(select(ProcessDefinition).where(
        ProcessDefinition.process_key == "customer_complaint").order_by(ProcessDefinition.version.desc()))
    # cathy starts it and owns it; sam, paula and mark hold candidate roles of its tasks; owen models,
    # alice audits, admin reads every case
    allowed = {"cathy", "sam", "paula", "mark", "owen", "alice", "admin"}
    refused = {"grace", "amy", "rita", "clara", "steve", "diego", "fiona", "dora"}
    for name in sorted(allowed):
        assert process_versions.downloadable_definition(session, user(name), definition.id) is definition, name
    for name in sorted(refused):
        with pytest.raises(NotAllowed):
            process_versions.downloadable_definition(session, user(name), definition.id)


def test_taking_part_in_a_case_of_the_version_allows_the_download(session, user):
    """Clara registered a drawing application, then lost the clerk role: she keeps the diagram of that case."""
    started = actions.start_process(session, user("steve"), "engineering_drawing_application", {
        "title": "Drawings", "customer_name": "Hotel", "project_name": "Lobby", "drawings_needed_by": "2027-01-31",
        "product_lines": "Chairs", "quantity": "4"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    task = session.scalar(select(HumanTask).where(HumanTask.instance_id == instance.id))
    actions.claim(session, user("clara"), task.id)
    session.commit()
    users.update_user(session, user("admin"), user("clara").id, ["dealer"], True)
    session.commit()
    clara, dora = user("clara"), user("dora")
    assert process_versions.downloadable_definition(session, clara, instance.definition_id).id == instance.definition_id
    with pytest.raises(NotAllowed):
        process_versions.downloadable_definition(session, dora, instance.definition_id)


def test_diagram_download_over_http(app, login_as):
    with _sessions_of(app)() as session:
        definition_id = session.scalar(select(ProcessDefinition.id).where(
            ProcessDefinition.process_key == "customer_complaint"))
    allowed = login_as("cathy").get(f"/definitions/{definition_id}.bpmn")
    assert allowed.status_code == 200 and allowed.headers["Content-Type"].startswith("application/xml")
    refused = login_as("dora").get(f"/definitions/{definition_id}.bpmn")
    assert refused.status_code == 403 and b"<?xml" not in refused.data
    assert login_as("dora").get("/modeler/drafts/1.bpmn").status_code == 403
