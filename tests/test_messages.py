"""BPMN messages: catches woken by name and business key or variables, message start events, receive tasks,
interrupting and non-interrupting message boundaries, and two pools of a collaboration exchanging messages —
through the engine, the case page and the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import event, select

from engine import actions, definitions, messages
from engine.db import Event, HumanTask, MessageSubscription, Process, ProcessInstance
from engine.errors import Conflict, InvalidDefinition, InvalidForm, NotAllowed, NotFound
from engine.vocabulary import InstanceStatus, TaskStatus

DATA = Path(__file__).parent / "data"
EXCHANGE = (DATA / "message_exchange.bpmn").read_text()
WAITS = (DATA / "message_waits.bpmn").read_text()


def _deploy(session, xml: str) -> None:
    for published in definitions.deploy_file(session, None, xml):
        session.get(Process, published.process_key).starter_roles = ["sales_rep"]
    session.commit()


def _case(session, instance_id: int) -> ProcessInstance:
    session.expire_all()
    return session.get(ProcessInstance, instance_id)


def _kinds(session, instance_id: int) -> list[str]:
    session.flush()
    return list(session.scalars(select(Event.kind).where(Event.instance_id == instance_id).order_by(Event.id)))


def _subscriptions(session, instance_id: int) -> list[tuple[str, str]]:
    return sorted(session.execute(select(MessageSubscription.element_id, MessageSubscription.message_name)
                                  .where(MessageSubscription.instance_id == instance_id)).all())


def _open_tasks(session, instance_id: int) -> list[str]:
    return sorted(session.scalars(select(HumanTask.element_id).where(HumanTask.instance_id == instance_id,
                                                                     HumanTask.status == TaskStatus.OPEN)))


def test_two_pools_exchange_messages_by_the_senders_business_key(session, user):
    _deploy(session, EXCHANGE)
    buyer = actions.start_process(session, user("steve"), "msg-buyer", {"title": "Paper", "quantity": 4},
                                  business_key="PO-7")
    session.commit()
    case = _case(session, buyer.id)
    assert case.status == InstanceStatus.COMPLETED
    supplier = session.scalars(select(ProcessInstance).where(ProcessInstance.process_key == "msg-supplier")).one()
    assert (supplier.business_key, supplier.status) == ("PO-7", InstanceStatus.COMPLETED)
    assert supplier.data["quantity"] == 4 and supplier.data["price"] == 40
    assert case.data["price"] == 40  # the confirmation carried the supplier's variables back
    assert "message_sent" in _kinds(session, buyer.id) and "message_received" in _kinds(session, buyer.id)
    assert _subscriptions(session, buyer.id) == []


def test_a_message_nobody_takes_is_said_in_the_senders_history_and_the_case_goes_on(session, user):
    buyer_only = EXCHANGE.replace('isExecutable="true">\n    <bpmn:startEvent id="s-start"',
                                  'isExecutable="false">\n    <bpmn:startEvent id="s-start"')
    _deploy(session, buyer_only)
    buyer = actions.start_process(session, user("steve"), "msg-buyer", {"title": "Paper"}, business_key="PO-8")
    session.commit()
    case = _case(session, buyer.id)
    assert case.status == InstanceStatus.RUNNING
    assert _subscriptions(session, buyer.id) == [("b-wait", "order confirmed")]
    sent = session.scalars(select(Event).where(Event.instance_id == buyer.id, Event.kind == "message_sent")).one()
    assert (sent.element_id, sent.data["message"], sent.data["to_cases"]) == ("b-send", "order placed", [])
    assert "No case waits for message “order placed” (key PO-8)" in sent.data["undelivered"]


def test_a_message_several_cases_wait_for_stops_the_sender_as_an_incident(session, user):
    _deploy(session, EXCHANGE)
    _deploy(session, WAITS)
    for number in ("PO-9", "PO-9"):
        _invoice(session, user, number)
    sender = EXCHANGE.replace('name="Place the order" messageRef="Message_order"',
                              'name="Place the order" messageRef="Message_paid"').replace(
        '<bpmn:message id="Message_confirm"', '<bpmn:message id="Message_paid" name="payment received" />\n'
                                              '  <bpmn:message id="Message_confirm"')
    _deploy(session, sender)
    buyer = actions.start_process(session, user("steve"), "msg-buyer", {"title": "Pay"}, business_key="PO-9")
    session.commit()
    assert _case(session, buyer.id).status == InstanceStatus.INCIDENT
    incident = session.scalars(select(Event).where(Event.instance_id == buyer.id, Event.kind == "incident")).one()
    assert incident.element_id == "b-send" and "2 cases wait for message “payment received”" in incident.data["message"]


def test_a_throw_without_a_message_passes_with_a_warning(session, user):
    silent = EXCHANGE.replace('<bpmn:messageEventDefinition id="med-s-end" messageRef="Message_confirm" />',
                              '<bpmn:messageEventDefinition id="med-s-end" />')
    _parsed, problems = definitions.parse_definitions(silent, {"sales_rep": "Sales representative"})
    assert [(p.element_id, p.severity) for p in problems] == [("s-end", "warning")]
    _deploy(session, silent)
    started = messages.correlate_message(session, user("admin"), "order placed", business_key="PO-2",
                                         payload={"quantity": 1})
    session.commit()
    assert _case(session, started[0].instance_id).status == InstanceStatus.COMPLETED


def _invoice(session, user, number: str) -> int:
    row = actions.start_process(session, user("steve"), "msg-invoice", {"title": f"Invoice {number}",
                                                                        "business_key": number})
    session.commit()
    return row.id


def test_a_message_from_outside_wakes_the_receive_task_of_the_case_with_its_business_key(session, user):
    _deploy(session, WAITS)
    first, second = _invoice(session, user, "INV-41"), _invoice(session, user, "INV-42")
    assert _subscriptions(session, second) == [("i-paid", "payment received")]
    woken = messages.correlate_message(session, user("admin"), "payment received", business_key="INV-42",
                                       payload={"amount": 120.5})
    session.commit()
    assert [(c.instance_id, c.element_id, c.started) for c in woken] == [(second, "i-paid", False)]
    case = _case(session, second)
    assert case.data["amount"] == 120.5
    assert _open_tasks(session, second) == ["i-check"] and _open_tasks(session, first) == []
    # the user task's two message boundaries wait now; the receive task's subscription is gone
    assert _subscriptions(session, second) == [("i-reminder", "payment reminder"), ("i-withdrawn", "invoice withdrawn")]
    received = session.scalars(select(Event).where(Event.instance_id == second, Event.kind == "message_received")).one()
    assert (received.element_id, received.data["message"], received.data["business_key"]) == (
        "i-paid", "payment received", "INV-42")
    assert received.actor.username == "admin"


def test_a_non_interrupting_boundary_leaves_the_task_open_an_interrupting_one_cancels_it(session, user):
    _deploy(session, WAITS)
    case_id = _invoice(session, user, "INV-50")
    messages.correlate_message(session, user("admin"), "payment received", business_key="INV-50")
    messages.correlate_message(session, user("admin"), "payment reminder", business_key="INV-50",
                               payload={"reminded": True})
    session.commit()
    assert _open_tasks(session, case_id) == ["i-check"]
    assert _case(session, case_id).status == InstanceStatus.RUNNING
    assert _case(session, case_id).data["reminded"] is True
    # SpiffWorkflow fires a non-interrupting boundary once per activity (Camunda 7 would take more reminders)
    assert _subscriptions(session, case_id) == [("i-withdrawn", "invoice withdrawn")]
    messages.correlate_message(session, user("admin"), "invoice withdrawn", business_key="INV-50")
    session.commit()
    case = _case(session, case_id)
    assert case.status == InstanceStatus.COMPLETED
    assert _open_tasks(session, case_id) == [] and _subscriptions(session, case_id) == []
    assert "task_cancelled" in _kinds(session, case_id)


def test_correlation_by_variables_and_the_ambiguity_rules(session, user):
    _deploy(session, WAITS)
    ids = [_invoice(session, user, number) for number in ("INV-60", "INV-61")]
    with pytest.raises(Conflict, match="2 cases wait for message “payment received”"):
        messages.correlate_message(session, user("admin"), "payment received")
    woken = messages.correlate_message(session, user("admin"), "payment received",
                                       correlation={"business_key": "INV-61"})
    assert [c.instance_id for c in woken] == [ids[1]]
    session.commit()
    _invoice(session, user, "INV-62")
    woken = messages.correlate_message(session, user("admin"), "payment received", all=True)
    session.commit()
    assert len(woken) == 2 and ids[1] not in [c.instance_id for c in woken]


def test_no_case_waits_nothing_starts_a_clear_error(session, user):
    _deploy(session, WAITS)
    _invoice(session, user, "INV-70")
    with pytest.raises(NotFound, match="No case waits for message “payment received” \\(key INV-99\\)"):
        messages.correlate_message(session, user("admin"), "payment received", business_key="INV-99")
    with pytest.raises(NotFound, match="message “no such”"):
        messages.correlate_message(session, user("admin"), "no such")
    with pytest.raises(InvalidForm):
        messages.correlate_message(session, user("admin"), "payment received", payload={"_secret": 1})
    with pytest.raises(NotAllowed):
        messages.correlate_message(session, user("steve"), "payment received", business_key="INV-70")


def test_a_message_from_outside_starts_a_case_at_a_message_start_event(session, user):
    _deploy(session, EXCHANGE.replace('<bpmn:messageEventDefinition id="med-s-end" messageRef="Message_confirm" />',
                                      ""))
    started = messages.correlate_message(session, user("admin"), "order placed", business_key="PO-1",
                                         payload={"quantity": 2})
    session.commit()
    assert [(c.element_id, c.started) for c in started] == [("s-start", True)]
    case = _case(session, started[0].instance_id)
    assert (case.process_key, case.business_key, case.status, case.data["price"]) == (
        "msg-supplier", "PO-1", InstanceStatus.COMPLETED, 20)
    assert _kinds(session, case.id)[:2] == ["started", "message_received"]


def test_a_catch_without_a_message_is_a_deploy_error_naming_it(session):
    nameless = WAITS.replace(' messageRef="Message_paid"', "")
    with pytest.raises(InvalidDefinition) as caught:
        definitions.deploy(session, None, nameless)
    assert [p.element_id for p in caught.value.problems] == ["i-paid"]
    assert "has no message" in caught.value.problems[0].message
    unknown = WAITS.replace('messageRef="Message_withdrawn"', 'messageRef="Message_gone"')
    with pytest.raises(InvalidDefinition) as caught:
        definitions.deploy(session, None, unknown)
    assert "i-withdrawn" in [p.element_id for p in caught.value.problems]


def test_cancelling_a_case_ends_its_subscriptions(session, user):
    from engine import case_actions

    _deploy(session, WAITS)
    case_id = _invoice(session, user, "INV-80")
    case_actions.cancel(session, user("admin"), case_id, "sent in error")
    session.commit()
    assert _subscriptions(session, case_id) == []
    with pytest.raises(NotFound):
        messages.correlate_message(session, user("admin"), "payment received", business_key="INV-80")


def _statements(session, action) -> list[str]:
    statements: list[str] = []

    def listener(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", listener)
    try:
        action()
    finally:
        event.remove(bind, "before_cursor_execute", listener)
    return [s for s in statements if "message_subscriptions" in s]


def test_subscription_rows_cost_nothing_unless_a_catch_begins_or_ends(session, user):
    _deploy(session, WAITS)
    _deploy(session, (DATA / "mini_approval.bpmn").read_text())
    assert _statements(session, lambda: actions.start_process(session, user("steve"), "mini_approval",
                                                              {"title": "Van", "amount": "3"})) == []
    started = _statements(session, lambda: _invoice(session, user, "INV-90"))
    assert [s.split()[0] for s in started] == ["INSERT"]  # its receive task waits
    woken = _statements(session, lambda: messages.correlate_message(session, user("admin"), "payment received",
                                                                    business_key="INV-90"))
    assert [s.split()[0] for s in woken] == ["SELECT", "DELETE", "INSERT"]  # found, then the boundaries wait


# --- through HTTP: the API and the case page ------------------------------------------------

PROBLEM = "application/problem+json"


@pytest.fixture
def bearer(app, login_as):
    def make(username: str):
        token = login_as(username).post("/api/v1/tokens", json={"name": "messages", "days": 1}).json["token"]
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make


def _start_over_api(client, number: str) -> int:
    response = client.post("/api/v1/processes/msg-invoice/start",
                           json={"values": {"title": f"Invoice {number}"}, "business_key": number})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_a_message_sent_over_the_api_wakes_the_case_with_its_business_key(app, login_as, bearer):
    published = login_as("owen").post("/modeler/api/publish", json={"xml": WAITS, "acknowledge": True})
    assert published.status_code == 200, published.get_data(as_text=True)[:1000]
    steve = bearer("steve")
    first, second = _start_over_api(steve, "INV-41"), _start_over_api(steve, "INV-42")
    page = login_as("steve").get(f"/instances/{second}").get_data(as_text=True)
    assert "message “payment received” (key INV-42) at “Payment received”" in page

    service = bearer("admin")
    answer = service.post("/api/v1/messages", json={"name": "payment received", "business_key": "INV-42",
                                                    "variables": {"amount": 99}})
    assert answer.status_code == 200, answer.json
    assert answer.json == [{"instance_id": second, "title": "Invoice INV-42", "element_id": "i-paid",
                            "started": False}]
    case = steve.get(f"/api/v1/cases/{second}").json
    assert case["data"]["amount"] == 99 and [t["element_id"] for t in case["tasks"]] == ["i-check"]
    assert steve.get(f"/api/v1/cases/{first}").json["tasks"] == []
    page = login_as("steve").get(f"/instances/{second}").get_data(as_text=True)
    waits = re.search(r'<dd id="waiting-messages">(.*?)</dd>', page, re.S).group(1)
    assert "message “invoice withdrawn” (key INV-42) at “Invoice withdrawn”" in waits
    assert "payment received" not in waits

    missing = service.post("/api/v1/messages", json={"name": "payment received", "business_key": "INV-99"})
    assert (missing.status_code, missing.mimetype) == (404, PROBLEM)
    assert "message “payment received” (key INV-99)" in missing.json["detail"]
    _start_over_api(steve, "INV-43")
    several = service.post("/api/v1/messages", json={"name": "payment received"})
    assert (several.status_code, several.mimetype) == (409, PROBLEM)
    assert "2 cases wait for message “payment received”" in several.json["detail"]
    refused = steve.post("/api/v1/messages", json={"name": "payment received", "business_key": "INV-41"})
    assert (refused.status_code, refused.mimetype) == (403, PROBLEM)
    bad = service.post("/api/v1/messages", json={"name": "payment received", "business_key": "INV-41",
                                                 "variables": {"1st": True}})
    assert (bad.status_code, bad.mimetype) == (422, PROBLEM) and "1st" in bad.json["errors"]
    assert steve.get(f"/api/v1/cases/{first}").json["tasks"] == []  # refused messages changed nothing


def test_an_event_based_gateway_takes_the_branch_of_the_message_that_comes_first(session, user):
    _deploy(session, (DATA / "message_race.bpmn").read_text())
    cases = [actions.start_process(session, user("steve"), "msg-offer", {"title": f"Offer {n}"},
                                   business_key=f"OF-{n}").id for n in (1, 2)]
    session.commit()
    assert _subscriptions(session, cases[0]) == [("o-accepted", "offer accepted"), ("o-declined", "offer declined")]
    page_waits = messages.correlate_message(session, user("admin"), "offer accepted", business_key="OF-1",
                                            payload={"delivery_date": "2027-01-15"})
    messages.correlate_message(session, user("admin"), "offer declined", business_key="OF-2")
    session.commit()
    assert [c.element_id for c in page_waits] == ["o-accepted"]
    assert _open_tasks(session, cases[0]) == ["o-deliver"] and _subscriptions(session, cases[0]) == []
    assert _case(session, cases[0]).data["delivery_date"] == "2027-01-15"
    assert _case(session, cases[1]).status == InstanceStatus.COMPLETED
    with pytest.raises(NotFound):  # the other branch's catch is gone with the race
        messages.correlate_message(session, user("admin"), "offer declined", business_key="OF-1")


def test_a_send_task_with_a_java_implementation_is_still_java():
    java = EXCHANGE.replace('<bpmn:sendTask id="b-send" name="Place the order" messageRef="Message_order">',
                            '<bpmn:sendTask id="b-send" name="Place the order" messageRef="Message_order" '
                            'camunda:class="com.acme.Order">')
    _parsed, problems = definitions.parse_definitions(java, {"sales_rep": "Sales representative"})
    assert [(p.element_id, p.kind) for p in problems if p.severity == "error"] == [("b-send", "mapping")]


PING_PONG = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="Defs_ping" targetNamespace="x">
  <bpmn:message id="m-ping" name="ping" />
  <bpmn:message id="m-pong" name="pong" />
  <bpmn:process id="ping" isExecutable="true">
    <bpmn:startEvent id="ping-start"><bpmn:outgoing>p1</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m-ping" /></bpmn:startEvent>
    <bpmn:endEvent id="ping-end"><bpmn:incoming>p1</bpmn:incoming>
      <bpmn:messageEventDefinition messageRef="m-pong" /></bpmn:endEvent>
    <bpmn:sequenceFlow id="p1" sourceRef="ping-start" targetRef="ping-end" />
  </bpmn:process>
  <bpmn:process id="pong" isExecutable="true">
    <bpmn:startEvent id="pong-start"><bpmn:outgoing>q1</bpmn:outgoing>
      <bpmn:messageEventDefinition messageRef="m-pong" /></bpmn:startEvent>
    <bpmn:endEvent id="pong-end"><bpmn:incoming>q1</bpmn:incoming>
      <bpmn:messageEventDefinition messageRef="m-ping" /></bpmn:endEvent>
    <bpmn:sequenceFlow id="q1" sourceRef="pong-start" targetRef="pong-end" />
  </bpmn:process>
</bpmn:definitions>"""


def test_processes_that_answer_each_other_without_end_stop_after_twenty_messages(session, user):
    definitions.deploy_file(session, None, PING_PONG)
    messages.correlate_message(session, user("admin"), "ping", business_key="loop")
    session.commit()
    cases = session.scalars(select(ProcessInstance).order_by(ProcessInstance.id)).all()
    assert len(cases) == messages.MAX_HOPS + 1
    assert {c.status for c in cases} == {InstanceStatus.COMPLETED}  # each ended at its throw: no incident to show
    last = session.scalars(select(Event).where(Event.instance_id == cases[-1].id, Event.kind == "message_sent")).one()
    assert last.data["to_cases"] == [] and "more than 20 times" in last.data["undelivered"]


def test_the_case_history_names_the_messages(app, login_as):
    assert login_as("owen").post("/modeler/api/publish", json={"xml": EXCHANGE, "acknowledge": True}).status_code == 200
    started = login_as("steve").post("/api/v1/processes/msg-buyer/start",
                                     json={"values": {"title": "Chairs"}, "business_key": "PO-77"})
    assert started.status_code == 201, started.json
    page = login_as("steve").get(f"/instances/{started.json['id']}").get_data(as_text=True)
    assert "message sent</strong>" in page and "message “order placed” (key PO-77)" in page
    assert "message received</strong>" in page and "message “order confirmed” (key PO-77)" in page
