"""People, roles and process settings as data (issue 14): administrators create roles and users, users
set their password from a mailed link, deactivation returns tasks, managers reassign, process settings
take effect; every change audited; bad input refused per field with nothing half-saved."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from engine import actions, audit, directory, notify, people, process_settings, roles, users
from engine.db import Event, HumanTask, Notification, PasswordToken, Process, Role, User
from engine.errors import InvalidForm, NotAllowed
from web.cli import main
from workflows.catalogue import DEMO_PASSWORD

T0 = datetime(2026, 11, 26, 9, 0)
COMPLAINT = {"title": "Complaint: test", "customer_name": "Mr Test", "customer_contact": "t@example.com",
             "product_name": "Chair", "problem_type": "quality", "complaint_description": "Broken."}
PASSWORD = "correct horse battery"


def _events(session, kind: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mailed_link(session) -> str:
    """Send the outbox through a real SMTP server (aiosmtpd) and return the path of the mailed link."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    received = []

    class Collect(Sink):
        async def handle_DATA(self, server, smtp_session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append(envelope)
            return "250 OK"

    controller = Controller(Collect(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        settings = notify.SmtpSettings(host="127.0.0.1", port=controller.port, base_url="https://flow.example.com")
        sent, failed = notify.send_pending_email(session, settings)
        session.commit()
    finally:
        controller.stop()
    assert failed == 0 and sent >= 1
    mail = next(m for m in received if m.rcpt_tos == ["nina@example.com"])
    body = email.message_from_bytes(mail.content, policy=email.policy.default).get_content()
    link = re.search(r"https://flow\.example\.com(/account/set-password/[\w-]+)", body)
    assert link, body
    return link.group(1)


# --- engine ---------------------------------------------------------------------------------------


def test_an_administrator_creates_a_role_and_a_user_who_sets_a_password_from_the_mailed_link(
        session, user, now):
    admin = user("admin")
    role = roles.create_role(session, admin, "complaint_desk", "Complaint desk", permissions=["statistics"])
    created = people.create_user(session, admin, "Nina", "Nina Berg", "nina@example.com",
                                 role_keys=["complaint_desk", "customer_service"], send_link=True)
    session.commit()
    assert created.user.username == "nina" and role.key in created.user.role_keys
    stored = session.scalars(select(PasswordToken).where(PasswordToken.user_id == created.user.id)).one()
    assert created.token not in stored.token_hash and len(stored.token_hash) == 64, "only the digest is stored"

    path = _mailed_link(session)
    assert path == people.SET_PASSWORD_PATH + created.token
    assert session.scalar(select(func.count()).select_from(Notification).where(
        Notification.link.is_not(None))) == 0, "the token left the outbox once mailed"

    token = path.rsplit("/", 1)[1]
    people.set_password_from_link(session, token, PASSWORD, PASSWORD)
    session.commit()
    assert users.authenticate(session, "nina", PASSWORD) is not None
    with pytest.raises(InvalidForm) as reused:
        people.set_password_from_link(session, token, PASSWORD + "!", PASSWORD + "!")
    assert "used already" in reused.value.errors["token"]
    kinds = {e.kind for e in session.scalars(select(Event))}
    assert {"role_created", "user_created", "password_link_sent", "password_set"} <= kinds
    assert audit.verify(session).ok


def test_an_expired_link_is_refused(session, user, now):
    created = people.create_user(session, user("admin"), "nina", "Nina Berg", "nina@example.com", send_link=True)
    session.commit()
    now.advance(hours=73)
    with pytest.raises(InvalidForm) as expired:
        people.set_password_from_link(session, created.token, PASSWORD, PASSWORD)
    assert "expired" in expired.value.errors["token"]
    with pytest.raises(InvalidForm) as unknown:
        people.check_link(session, "not-a-token")
    assert "not valid" in unknown.value.errors["token"]


def test_a_new_link_replaces_the_old_one(session, user, now):
    admin = user("admin")
    first = people.create_user(session, admin, "nina", "Nina Berg", "nina@example.com", send_link=True).token
    second = people.send_password_link(session, admin, users.user_by_name(session, "nina").id)
    session.commit()
    with pytest.raises(InvalidForm):
        people.check_link(session, first)
    assert people.check_link(session, second).username == "nina"


def test_deactivating_a_user_returns_their_tasks_to_the_queue(session, user, now):
    cathy, admin = user("cathy"), user("admin")
    instance = actions.start_process(session, cathy, "customer_complaint", COMPLAINT)
    session.commit()
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == "open"))
    actions.claim(session, cathy, task_id)
    session.commit()
    generation = cathy.session_generation
    people.update_access(session, admin, cathy.id, ["customer_service"], False)
    session.commit()
    task = session.get(HumanTask, task_id)
    session.refresh(task)
    assert task.assignee_id is None and task.status == "open"
    returned = _events(session, "task_returned")
    assert [(e.task_id, e.instance_id, e.data["user"]) for e in returned] == [(task_id, instance.id, "cathy")]
    assert cathy.session_generation == generation + 1 and not cathy.active
    assert audit.verify(session).ok


def test_the_managing_role_reassigns_the_managed_roles_tasks(session, user, now):
    admin, cathy, mark = user("admin"), user("cathy"), user("mark")
    service = session.get(Role, "customer_service")
    roles.update_role(session, admin, "customer_service", name=service.name, permissions=[],
                      manager_role="marketing_manager", active=True)
    instance = actions.start_process(session, cathy, "customer_complaint", COMPLAINT)
    session.commit()
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == "open"))
    actions.claim(session, cathy, task_id)
    session.commit()
    users.ensure_user(session, "carl", "Carl Diaz", DEMO_PASSWORD, ["customer_service"])
    session.commit()
    actions.delegate(session, mark, task_id, "carl")
    session.commit()
    assert session.get(HumanTask, task_id).assignee.username == "carl"
    with pytest.raises(NotAllowed):
        actions.delegate(session, user("sam"), task_id, "cathy")


def test_separated_pairs_take_effect_for_new_tasks(session, user, now):
    """Drawing application: the clerk registers, then approves; with the pair, one clerk cannot do both."""
    clara, steve = user("clara"), user("steve")
    process = session.get(Process, "engineering_drawing_application")
    process_settings.update_settings(
        session, clara, process.key, starter_roles=["sales_rep"], owner_role="clerk",
        separated_tasks=list(process.separated_tasks),
        separated_pairs=[("register_application", "approve_application")],
        default_due="P2D", default_priority="70")
    session.commit()
    changed = _events(session, "process_settings_changed")[-1]
    assert changed.data["after"]["separated_pairs"] == [["approve_application", "register_application"]]
    drawing = {"title": "Drawings", "customer_name": "Hotel", "project_name": "Lobby",
               "drawings_needed_by": "2027-01-31", "product_lines": "Chairs", "quantity": "4"}
    instance = actions.start_process(session, steve, process.key, drawing)
    session.commit()
    register = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    actions.complete_task(session, clara, register.id, {"registration_number": "ED-1",
                                                        "registration_date": "2026-11-26"})
    session.commit()
    approve = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                      HumanTask.status == "open")).one()
    assert approve.element_id == "approve_application"
    with pytest.raises(NotAllowed, match="separation of duties"):
        actions.claim(session, clara, approve.id)


def test_process_defaults_fill_what_the_diagram_leaves_out(session, user, now):
    admin = user("admin")
    process = session.get(Process, "customer_complaint")
    process_settings.update_settings(session, admin, process.key, starter_roles=process.starter_roles,
                                     owner_role=process.owner_role, separated_tasks=[], separated_pairs=[],
                                     default_due="PT4H", default_priority="80")
    instance = actions.start_process(session, user("cathy"), process.key, COMPLAINT)
    session.commit()
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    assert (task.priority, task.due_at) == (60, T0 + timedelta(days=1)), "the diagram sets both: it wins"
    from engine import definitions

    latest = definitions.latest_definition(session, process.key)  # a version whose first task sets neither
    bare = latest.xml.replace(' camunda:dueDate="P1D" camunda:priority="60"', "")
    definitions.deploy(session, admin, bare, note="no due date")
    instance = actions.start_process(session, user("cathy"), process.key, COMPLAINT)
    session.commit()
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    assert (task.priority, task.due_at) == (80, T0 + timedelta(hours=4))


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda s, u: roles.create_role(s, u("admin"), "clerk", "Clerk again"), "key", "taken"),
    (lambda s, u: roles.create_role(s, u("admin"), "Bad Key", "x"), "key", "lower-case"),
    (lambda s, u: people.create_user(s, u("admin"), "mark", "Another Mark", password=PASSWORD, repeated=PASSWORD),
     "username", "taken"),
    (lambda s, u: people.create_user(s, u("admin"), "nina", "Nina", send_link=True), "email", "e-mail"),
    (lambda s, u: people.create_user(s, u("admin"), "nina", "Nina", password="short", repeated="short"),
     "password", "at least"),
    (lambda s, u: people.update_access(s, u("admin"), u("admin").id, ["admin"], False), "active",
     "deactivate yourself"),
    (lambda s, u: roles.update_role(s, u("admin"), "admin", name="Administrator", permissions=["audit"],
                                    manager_role=None, active=True), "permissions", "nobody who may administer"),
    (lambda s, u: roles.update_role(s, u("admin"), "clerk", name="Clerk", permissions=[], manager_role=None,
                                    active=False), "active", "Engineering drawing application"),
    (lambda s, u: process_settings.update_settings(
        s, u("admin"), "customer_complaint", starter_roles=["nope"], owner_role=None, separated_tasks=[],
        separated_pairs=[("classify_complaint", "classify_complaint")], default_due="tomorrow",
        default_priority="high"), "default_due", "ISO 8601"),
])
def test_bad_input_is_refused_per_field_and_nothing_is_saved(session, user, now, change, field, message):
    before = session.scalar(select(func.count()).select_from(Event))
    with pytest.raises(InvalidForm) as refused:
        change(session, user)
    session.rollback()
    assert message in refused.value.errors[field], refused.value.errors
    assert session.scalar(select(func.count()).select_from(Event)) == before
    assert users.user_by_name(session, "nina") is None and session.get(Role, "Bad Key") is None
    assert session.get(Role, "admin").permissions and session.get(Role, "clerk").active


def test_the_last_administrator_cannot_be_removed(session, user, now):
    admin = user("admin")
    owen = user("owen")
    people.update_access(session, admin, owen.id, ["process_owner", "admin"], True)
    session.commit()
    with pytest.raises(InvalidForm, match="own administrator"):
        roles.set_members(session, admin, "admin", remove=[admin.id])
    session.rollback()
    roles.set_members(session, owen, "admin", remove=[admin.id])
    session.commit()
    with pytest.raises(InvalidForm) as refused:
        people.update_access(session, None, owen.id, ["process_owner"], True)
    assert "nobody who may administer" in refused.value.errors["roles"]


def test_a_role_cannot_manage_itself_through_others(session, user, now):
    admin = user("admin")
    before = session.scalar(select(func.count()).select_from(Event))
    with pytest.raises(InvalidForm) as two:  # sales_rep is managed by sales_manager (the demo organisation)
        roles.update_role(session, admin, "sales_manager", name="Sales lead", permissions=["statistics"],
                          manager_role="sales_rep", active=True)
    session.rollback()
    assert two.value.errors == {"manager_role": "Sales lead is managed by Sales representative, which is managed "
                                                "by Sales lead: a role cannot manage itself through others."}
    assert two.value.values["manager_role"] == "sales_rep" and two.value.values["name"] == "Sales lead"

    roles.update_role(session, admin, "assistant_marketing_manager", name="Assistant marketing manager",
                      permissions=[], manager_role="marketing_manager", active=True)
    session.commit()
    with pytest.raises(InvalidForm) as three:  # dealer → assistant marketing manager → marketing manager → dealer
        roles.update_role(session, None, "marketing_manager", name="Marketing manager", permissions=["statistics"],
                          manager_role="dealer", active=True)
    session.rollback()
    assert three.value.errors["manager_role"] == (
        "Marketing manager is managed by Dealer / specialty store, which is managed by Assistant marketing manager, "
        "which is managed by Marketing manager: a role cannot manage itself through others.")
    assert session.get(Role, "marketing_manager").manager_role is None
    assert session.get(Role, "sales_manager").manager_role is None
    assert session.scalar(select(func.count()).select_from(Event)) == before + 1, "only the accepted change"


def test_creating_a_role_refuses_a_cycle_and_a_loop_elsewhere_is_no_hang(session, user, now):
    admin = user("admin")
    users.ensure_role(session, "team_a", "Team A", manager_role="team_b")  # set up before its manager exists
    users.ensure_role(session, "loop_x", "Loop X", manager_role="loop_y")
    users.ensure_role(session, "loop_y", "Loop Y", manager_role="loop_x")
    session.commit()
    with pytest.raises(InvalidForm) as refused:
        roles.create_role(session, admin, "team_b", "Team B", manager_role="team_a")
    session.rollback()
    assert refused.value.errors["manager_role"] == ("Team B is managed by Team A, which is managed by Team B: "
                                                    "a role cannot manage itself through others.")
    assert session.get(Role, "team_b") is None
    assert roles.create_role(session, admin, "team_c", "Team C", manager_role="loop_x").manager_role == "loop_x"
    assert roles.update_role(session, admin, "clerk", name="Comprehensive clerk", permissions=[],
                             manager_role="team_c", active=True).manager_role == "team_c"


# --- HTTP -----------------------------------------------------------------------------------------


def test_admin_pages_create_a_role_and_a_user_who_gets_a_task(app, login_as, now):
    admin = login_as("admin")
    response = admin.post("/admin/roles/new", data={"key": "complaint_desk", "name": "Complaint desk",
                                                    "permissions": ["statistics"], "manager_role": ""})
    assert response.status_code == 302 and response.location.endswith("/admin/roles/complaint_desk")
    response = admin.post("/admin/users/new", data={
        "username": "nina", "full_name": "Nina Berg", "email": "nina@example.com", "password_mode": "link",
        "roles": ["complaint_desk", "customer_service"]})
    assert response.status_code == 302
    sessions = app.extensions["deptflow_sessions"]
    with sessions() as session:
        path = _mailed_link(session)
    anonymous = app.test_client()
    page = anonymous.get(path)
    assert page.status_code == 200 and "Nina Berg" in page.get_data(as_text=True)
    short = anonymous.post(path, data={"new": "short", "repeated": "short"})
    assert short.status_code == 422 and "at least" in short.get_data(as_text=True)
    assert anonymous.post(path, data={"new": PASSWORD, "repeated": PASSWORD}).status_code == 302
    assert anonymous.post(path, data={"new": PASSWORD, "repeated": PASSWORD}).status_code == 410

    nina = app.test_client()
    assert nina.post("/login", data={"username": "nina", "password": PASSWORD}).status_code == 302
    cathy = login_as("cathy")
    assert cathy.post("/processes/customer_complaint/start", data=COMPLAINT).status_code == 302
    inbox = nina.get("/").get_data(as_text=True)
    assert "Classify" in inbox
    with sessions() as session:
        task_id = session.scalar(select(HumanTask.id).where(HumanTask.status == "open",
                                                            HumanTask.element_id == "classify_complaint"))
    assert nina.post(f"/tasks/{task_id}/claim").status_code == 302


def test_user_list_searches_and_pages(app, login_as):
    sessions = app.extensions["deptflow_sessions"]
    with sessions() as session:
        hashed = users.hash_password("x" * 12)
        session.add_all([User(username=f"user{i:03}", full_name=f"Person {i:03}", password_hash=hashed,
                              email=f"p{i}@example.com") for i in range(120)])
        session.commit()
    admin = login_as("admin")
    first = admin.get("/admin/users").get_data(as_text=True)
    assert "136 users" in first and "Page 1 of 3" in first
    found = admin.get("/admin/users?q=person+07").get_data(as_text=True)
    assert "10 users" in found and "user075" in found
    assert "Page 2 of 3" in admin.get("/admin/users?page=2").get_data(as_text=True)
    clerks = admin.get("/admin/users?role=clerk").get_data(as_text=True)
    assert "1 user" in clerks and "Clara Novak" in clerks
    assert "clara" in admin.get("/admin/roles/clerk?q=clara").get_data(as_text=True)
    assert "Comprehensive clerk" in admin.get("/admin/roles?q=clerk").get_data(as_text=True)


def test_refusals_on_the_pages_name_the_field(app, login_as):
    admin = login_as("admin")
    taken = admin.post("/admin/roles/new", data={"key": "clerk", "name": "Clerk"})
    assert taken.status_code == 422 and "is taken already" in taken.get_data(as_text=True)
    with app.extensions["deptflow_sessions"]() as session:
        admin_id = users.user_by_name(session, "admin").id
    myself = admin.post(f"/admin/users/{admin_id}", data={"roles": ["admin"]})
    assert myself.status_code == 422 and "You cannot deactivate yourself" in myself.get_data(as_text=True)
    in_use = admin.post("/admin/roles/clerk", data={"name": "Clerk"})
    assert in_use.status_code == 422 and "in use" in in_use.get_data(as_text=True)


def test_process_settings_on_the_process_page(app, login_as):
    clara = login_as("clara")  # the clerk role owns the drawing application
    page = clara.get("/modeler/engineering_drawing_application")
    assert page.status_code == 200 and 'id="process-settings"' in page.get_data(as_text=True)
    saved = clara.post("/modeler/engineering_drawing_application/settings", data={
        "starter_roles": ["sales_rep"], "owner_role": "clerk", "separated_tasks": ["approve_application"],
        "pair_a": ["register_application", ""], "pair_b": ["approve_application", ""], "default_due": "P5D",
        "default_priority": "60"})
    assert saved.status_code == 302
    bad = clara.post("/modeler/engineering_drawing_application/settings", data={"default_priority": "high"})
    assert bad.status_code == 422 and "whole number" in bad.get_data(as_text=True)
    owen = login_as("owen")  # models, does not own it: reads the settings
    assert 'id="settings-read-only"' in owen.get("/modeler/engineering_drawing_application").get_data(as_text=True)
    assert owen.post("/modeler/engineering_drawing_application/settings", data={}).status_code == 403
    with app.extensions["deptflow_sessions"]() as session:
        process = session.get(Process, "engineering_drawing_application")
        assert process.separated_pairs == [["approve_application", "register_application"]]
        assert process.default_due == "P5D" and process.default_priority == 60


def test_the_role_page_refuses_a_management_cycle_and_keeps_what_was_typed(app, login_as):
    admin = login_as("admin")
    response = admin.post("/admin/roles/sales_manager", data={"name": "Sales lead", "description": "Typed.",
                                                              "permissions": ["statistics"],
                                                              "manager_role": "sales_rep", "active": "on"})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert ("Sales lead is managed by Sales representative, which is managed by Sales lead: a role cannot manage "
            "itself through others.") in page
    assert 'value="Sales lead"' in page and '<option value="sales_rep" selected>' in page
    with app.extensions["deptflow_sessions"]() as session:
        kept = session.get(Role, "sales_manager")
        assert (kept.name, kept.manager_role) == ("Sales manager", None)


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_init_admin_without_demo_then_users_and_roles(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'people.sqlite3'}"
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", url)
    monkeypatch.setenv("DEPTFLOW_ADMIN_PASSWORD", PASSWORD)
    runner = CliRunner()
    result = runner.invoke(main, ["init", "--admin", "ada"])
    assert result.exit_code == 0, result.output
    assert "administrator ada created" in result.output and "demo users" not in result.output
    result = runner.invoke(main, ["role", "add", "complaint_desk", "--name", "Complaint desk",
                                  "--manager", "marketing_manager"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["role", "add", "complaint_desk", "--name", "Again"]).exit_code == 1
    result = runner.invoke(main, ["user", "add", "nina", "--name", "Nina Berg", "--role", "customer_service"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    duplicate = runner.invoke(main, ["user", "add", "nina", "--name", "N"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert duplicate.exit_code == 1 and "username: The username “nina” is taken." in duplicate.stderr
    linked = runner.invoke(main, ["user", "add", "olga", "--name", "Olga", "--email", "olga@example.com",
                                  "--send-link"])
    assert linked.exit_code == 0 and "set-password link queued" in linked.output
    assert runner.invoke(main, ["user", "set-password", "nina"],
                         input=f"{PASSWORD}2\n{PASSWORD}2\n").exit_code == 0
    assert runner.invoke(main, ["user", "deactivate", "nina"]).exit_code == 0
    refused = runner.invoke(main, ["user", "deactivate", "ada"])
    assert refused.exit_code == 1 and "nobody who may administer" in refused.stderr
    from engine.core import WorkflowEngine
    from engine.db import make_engine

    engine = make_engine(url)
    with WorkflowEngine().session_factory(engine)() as session:
        names = set(session.scalars(select(User.username)))
        assert names == {"ada", "nina", "olga"}
        assert not users.user_by_name(session, "nina").active
        lanes = session.scalars(select(Role).where(Role.key == "marketing_manager")).one()
        assert lanes.name == "Marketing manager" and lanes.permissions == []
        assert session.scalar(select(func.count()).select_from(User).join(User.roles).where(
            Role.key == "marketing_manager")) == 0, "lane roles come without members"
        assert session.get(Process, "customer_complaint").starter_roles == ["customer_service"]
        assert users.authenticate(session, "nina", PASSWORD + "2") is None, "deactivated"
        assert audit.verify(session).ok
    engine.dispose()


def test_a_directory_users_password_is_neither_set_nor_mailed(session, user):
    """A directory login's password is the directory's: deptflow setting one would replace the directory's mark
    (and their directory logins would be refused from then on)."""
    dora = user("dora")
    dora.password_hash = directory.LDAP_IDENTITY
    session.commit()
    for attempt in (lambda: people.set_password(session, user("admin"), dora.id, PASSWORD),
                    lambda: people.send_password_link(session, user("admin"), dora.id)):
        with pytest.raises(InvalidForm) as refused:
            attempt()
        assert "signs in through the directory" in refused.value.errors["password"]
        session.rollback()
    assert session.get(User, dora.id).password_hash == directory.LDAP_IDENTITY
    assert session.scalar(select(func.count()).select_from(PasswordToken)
                          .where(PasswordToken.user_id == dora.id)) == 0


def test_the_user_page_offers_a_directory_user_no_set_password_link(app, login_as):
    with app.extensions["deptflow_sessions"]() as session:
        dora = users.user_by_name(session, "dora")
        dora.password_hash, dora_id = directory.LDAP_IDENTITY, dora.id
        session.commit()
    admin = login_as("admin")
    page = admin.get(f"/admin/users/{dora_id}").get_data(as_text=True)
    assert "signs in through the directory" in page and "Send a new set-password link" not in page
    refused = admin.post(f"/admin/users/{dora_id}/password-link")
    assert refused.status_code == 422
    assert "the password is kept there, not by deptflow" in refused.get_data(as_text=True)
