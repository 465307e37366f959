"""An administrator sets up a new team in the browser: a role, a user with an initial password;
the new user logs in and finds a task of that role in their inbox."""

from __future__ import annotations

from playwright.sync_api import expect

from engine import actions, definitions, users
from engine.core import WorkflowEngine
from engine.db import Process, make_engine

TRADE_FAIR = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_fair" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="trade_fair_booth" name="Trade fair booth" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="book_booth" name="Book the booth" camunda:candidateGroups="trade_fair">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="book_booth" />
    <bpmn:sequenceFlow id="f2" sourceRef="book_booth" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _a_case_for_the_new_role(database_url: str) -> None:
    """What a process owner does next: publish a diagram naming the role; a colleague starts a case."""
    engine = make_engine(database_url)
    with WorkflowEngine().session_factory(engine)() as session:
        definitions.deploy(session, None, TRADE_FAIR)
        session.get(Process, "trade_fair_booth").starter_roles = ["sales_rep"]
        session.commit()
        actions.start_process(session, users.user_by_name(session, "steve"), "trade_fair_booth", {})
        session.commit()
    engine.dispose()


def test_an_administrator_sets_up_a_role_and_a_user_who_then_works(new_page, live_server, login, sqlite_url):
    admin = new_page()
    login(admin, live_server, "admin")
    admin.goto(f"{live_server}/admin/roles")
    admin.get_by_role("button", name="New role").or_(admin.get_by_role("link", name="New role")).first.click()
    admin.get_by_label("Key").fill("trade_fair")
    admin.get_by_label("Name", exact=True).fill("Trade fair team")
    admin.get_by_role("button", name="Create role").click()
    expect(admin.locator("body")).to_contain_text("Trade fair team")

    admin.goto(f"{live_server}/admin/users/new")
    admin.get_by_label("Username").fill("tina")
    admin.get_by_label("Full name").fill("Tina Berg")
    admin.get_by_label("Set an initial password").check()
    admin.get_by_label("Initial password", exact=True).fill("fair-booth-2027")
    admin.get_by_label("Initial password again").fill("fair-booth-2027")
    admin.get_by_label("Roles").select_option("trade_fair")
    admin.get_by_role("button", name="Create user").click()
    expect(admin.locator("body")).to_contain_text("Tina Berg")

    _a_case_for_the_new_role(sqlite_url)

    tina = new_page()
    login(tina, live_server, "tina", "fair-booth-2027")
    row = tina.locator("#available tr[data-task-id]").filter(has_text="Trade fair booth by Steve Hall")
    expect(row).to_contain_text("Book the booth")
    expect(row).to_contain_text("Trade fair team")
