"""A case waiting for a BPMN message says so on its page; the message from outside moves it on."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from engine import actions, definitions, messages, users
from engine.core import WorkflowEngine
from engine.db import Process, make_engine

WAITS = (Path(__file__).parents[1] / "data" / "message_waits.bpmn").read_text()


@pytest.fixture
def sessions(sqlite_url: str):
    engine = make_engine(sqlite_url)
    yield WorkflowEngine().session_factory(engine)
    engine.dispose()


@pytest.fixture
def invoice(sessions) -> int:
    with sessions() as session:
        definitions.deploy(session, None, WAITS)
        session.flush()
        session.get(Process, "msg-invoice").starter_roles = ["sales_rep"]
        row = actions.start_process(session, users.user_by_name(session, "steve"), "msg-invoice",
                                    {"title": "Invoice INV-42", "business_key": "INV-42"})
        session.commit()
        return row.id


def test_the_case_page_says_which_message_it_waits_for(new_page, live_server, login, sessions, invoice):
    page = new_page()
    login(page, live_server, "steve")
    page.goto(f"{live_server}/instances/{invoice}")
    waiting = page.locator("#waiting-messages")
    expect(waiting).to_contain_text("message “payment received” (key INV-42) at “Payment received”")
    expect(page.locator("#open-tasks")).to_have_text("none")

    with sessions() as session:  # the bank's system tells deptflow
        messages.correlate_message(session, users.user_by_name(session, "admin"), "payment received",
                                   business_key="INV-42", payload={"amount": 120})
        session.commit()
    page.reload()
    expect(page.locator("#open-tasks")).to_contain_text("Check the payment")
    expect(waiting).to_contain_text("message “invoice withdrawn” (key INV-42)")
    expect(waiting).not_to_contain_text("payment received")
    expect(page.locator('#events > li[data-kind="message_received"]')).to_contain_text(
        "message “payment received” (key INV-42)")
