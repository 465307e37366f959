"""BPMN messages: catches woken by name and business key or variables, message start events, receive tasks,
interrupting and non-interrupting message boundaries, and two pools of a collaboration exchanging messages —
through the engine, the case page and the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import actions, definitions, messages, rows
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


def test_a_message_nobody_takes_stops_the_sender_as_an_incident(session, user):
    buyer_only = EXCHANGE.replace('isExecutable="true">\n    <bpmn:startEvent id="s-start"',
                                  'isExecutable="false">\n    <bpmn:startEvent id="s-start"')
    _deploy(session, buyer_only)
    buyer = actions.start_process(session, user("steve"), "msg-buyer", {"title": "Paper"}, business_key="PO-8")
    session.commit()
    case = _case(session, buyer.id)
    assert case.status == InstanceStatus.INCIDENT
    incident = session.scalars(select(Event).where(Event.instance_id == buyer.id, Event.kind == "incident")).one()
    assert incident.element_id == "b-send" and "order placed" in incident.data["message"]
