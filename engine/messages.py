"""BPMN messages: correlate a message to the cases that wait for it, or start a case with it.

A message has a name (the ``bpmn:message``'s name) and a payload of variables. It reaches a case that
waits at a catch for that name (an intermediate catch event, a receive task, a message boundary event, a
branch of an event-based gateway) and, when asked, whose business key or variables match; the payload is
merged into the case's data, as Camunda 7's ``correlateMessage`` sets process variables. When no case
waits and a published process has a message start event for the name, the message starts a case of it
with the business key. The rows of :mod:`engine.subscriptions` find the waiting cases; only the cases
that match are loaded.

Messages between cases: what a throw event, a send task or a message end event sends and no step of its
own case catches goes through the same correlation, with the sender's business key and variables as
payload (:func:`deliver_sent`) — how the pools of a collaboration, deployed as separate processes, talk.

Who may send a message from outside: administrators and integrations whose roles grant
``external_worker`` (the API's service accounts); a message tells a case that something happened
elsewhere, as a worker's completion does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.exceptions import WorkflowException
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from . import audit, forms, notify, subscriptions
from . import definitions as defs
from .actions import _launch, record_step
from .db import MessageSubscription, Process, ProcessDefinition, ProcessInstance, User
from .errors import Conflict, InvalidForm, NotAllowed, NotFound
from .permissions import can
from .rows import CaseChanged, write_instance
from .running import Incident, RunningInstance, SentMessage, data_changes
from .sql import run
from .vocabulary import EventKind, InstanceStatus, Permission

#: how many times messages may go from case to case within one action (two pools answering each other
#: without end stop as an incident of the last sender)
MAX_HOPS = 20
_HOPS = "deptflow.message_hops"


@dataclass(frozen=True, slots=True)
class Correlated:
    """A case a message reached: woken at a catch, or started by a message start event."""

    instance_id: int
    title: str
    element_id: str
    started: bool


_subs = MessageSubscription.__table__
_instances = ProcessInstance.__table__
_WAITING = (select(_subs.c.instance_id, _subs.c.element_id, _instances.c.data, _instances.c.business_key)
            .join(_instances, _instances.c.id == _subs.c.instance_id)
            .where(_subs.c.message_name == bindparam("name"), _instances.c.status == InstanceStatus.RUNNING)
            .order_by(_subs.c.instance_id, _subs.c.id))


def _describe(name: str, business_key: str | None, correlation: dict[str, Any] | None) -> str:
    keys = [f"key {business_key}"] if business_key else []
    keys += [f"{k} = {v!r}" for k, v in (correlation or {}).items()]
    return f"message “{name}”" + (f" ({', '.join(keys)})" if keys else "")


def may_send(actor: User | None) -> bool:
    """Whether ``actor`` may send messages to cases from outside (see the module's docstring)."""
    return can(actor, Permission.ADMINISTER) or can(actor, Permission.EXTERNAL_WORKER)


def correlate_message(session: Session, actor: User, name: str, *, business_key: str | None = None,
                      correlation: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
                      all: bool = False) -> list[Correlated]:  # noqa: A002 - Camunda's word for it
    """Deliver message ``name`` to the case that waits for it, or to every one with ``all``; when none waits,
    start a case of the process whose message start event has that name.

    :param business_key: only the case with this business key (and a started case gets it)
    :param correlation: only cases whose variables have these values
    :param payload: variables merged into the case's data
    :raises NotAllowed: ``actor`` may not send messages
    :raises NotFound: no case waits for the message and no process starts with it
    :raises Conflict: several cases wait for it (or several processes start with it) and ``all`` is not set
    :raises InvalidForm: a payload variable name that process data cannot hold
    """
    if not may_send(actor):
        raise NotAllowed("Only administrators and integrations with the external worker permission send messages.")
    text = (name or "").strip()
    if not text:
        raise InvalidForm({"name": "Name the message (the name of the bpmn:message in the diagram)."}, {"name": name})
    variables = _variables(payload or {})
    return _correlate(session, actor, text, business_key or None, correlation or {}, variables, all_=all)


def _variables(variables: dict[str, Any]) -> dict[str, Any]:
    errors = {str(key): "A variable name is letters, digits and _, not starting with a digit or _."
              for key in variables if not (isinstance(key, str) and key.isidentifier() and not key.startswith("_"))}
    if errors:
        raise InvalidForm(errors, variables)
    return dict(variables)


def _correlate(session: Session, actor: User, name: str, business_key: str | None, correlation: dict[str, Any],
               payload: dict[str, Any], *, all_: bool, sender: int | None = None) -> list[Correlated]:
    waiting: dict[int, str] = {}
    for row in run(session, _WAITING, {"name": name}):
        if business_key is not None and row.business_key != business_key:
            continue
        data = row.data or {}
        if any(key not in data or data[key] != value for key, value in correlation.items()):
            continue
        waiting.setdefault(row.instance_id, row.element_id)
    what = _describe(name, business_key, correlation)
    if len(waiting) > 1 and not all_:
        raise Conflict(f"{len(waiting)} cases wait for {what} (cases {', '.join(map(str, waiting))}): "
                       "narrow it down by business key or variables, or send it to all of them.")
    if waiting:
        return [_wake(session, actor, instance_id, name, business_key, payload, sender) for instance_id in waiting]
    starts = _message_starts(session, name)
    if len(starts) > 1 and not all_:
        raise Conflict(f"{len(starts)} processes start with {what} ({', '.join(p for p, _ in starts)}).")
    if not starts:
        raise NotFound(f"No case waits for {what}, and no published process starts with it.")
    return [_start(session, actor, process_key, element_id, name, business_key, payload, sender)
            for process_key, element_id in starts]


def _wake(session: Session, actor: User, instance_id: int, name: str, business_key: str | None,
          payload: dict[str, Any], sender: int | None) -> Correlated:
    running = RunningInstance.open(session, instance_id)
    row = running.row
    if row.status != InstanceStatus.RUNNING:
        raise CaseChanged  # it stopped after the subscription was read
    before = dict(row.data)
    element = next((e for _t, e, n in sorted(subscriptions.waiting(running.workflow)) if n == name), "")
    try:
        running.workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=dict(payload)))
    except WorkflowException:
        raise CaseChanged from None  # it moved on after the subscription was read
    running.run()
    result = running.save(session)
    audit.record(session, EventKind.MESSAGE_RECEIVED, instance=row, actor=actor, element_id=element or None,
                 name=running.definition.step_name(element) if element else name, message=name,
                 business_key=business_key, values=payload, from_case=sender, changes=data_changes(before, row.data))
    record_step(session, running, result)
    return Correlated(row.id, row.title, element, started=False)


def _message_starts(session: Session, name: str) -> list[tuple[str, str]]:
    """(process key, start event id) of the latest published versions that a message of this name starts."""
    newest = (select(ProcessDefinition.process_key, func.max(ProcessDefinition.version).label("version"))
              .where(ProcessDefinition.status == "published").group_by(ProcessDefinition.process_key).subquery())
    latest = session.execute(
        select(ProcessDefinition.id, ProcessDefinition.sha256, ProcessDefinition.process_key)
        .join(newest, (newest.c.process_key == ProcessDefinition.process_key)
              & (newest.c.version == ProcessDefinition.version))
        .order_by(ProcessDefinition.process_key))
    found = []
    for definition_id, sha256, process_key in latest:
        parsed = defs.parsed_by_sha(session, definition_id, sha256, process_key)
        found += [(process_key, element) for element, message in parsed.message_starts.items() if message == name]
    return found


def _start(session: Session, actor: User, process_key: str, element_id: str, name: str, business_key: str | None,
           payload: dict[str, Any], sender: int | None) -> Correlated:
    process = session.get(Process, process_key)
    definition = defs.latest_definition(session, process_key)
    assert process is not None and definition is not None
    parsed = defs.parsed(session, definition)
    data = forms.validate(parsed.start_form, {}, {}) | payload
    title = str(payload.get("title") or "").strip() or f"{process.title} ({name})"
    row = _launch(session, actor, process_key, definition.id, definition.version, parsed, data, title,
                  business_key, message=BpmnEvent(MessageEventDefinition(name), payload=dict(payload)),
                  received={"element_id": element_id, "name": parsed.step_name(element_id), "message": name,
                            "business_key": business_key, "values": payload, "from_case": sender, "started": True}).row
    return Correlated(row.id, row.title, element_id, started=True)


_SENDER = select(_instances.c.business_key, _instances.c.started_by_id).where(
    _instances.c.id == bindparam("instance_id"))


def deliver_sent(session: Session, running: RunningInstance, sent: list[SentMessage]) -> None:
    """Correlate what a case's throw events sent, by the sender's business key, on behalf of whoever
    started the sender. A message that no case waits for and no process starts with goes nowhere, said so
    in the sender's history (a message to a pool outside deptflow: the customer's, a supplier's); one that
    several cases wait for stops the sender as an incident naming the throw (the key does not tell which)."""
    row = running.row
    sender = run(session, _SENDER, {"instance_id": row.id}).one()
    starter = session.get(User, sender.started_by_id)
    hops = session.info.get(_HOPS, 0)
    for message in sent:
        if hops >= MAX_HOPS:
            _stop(session, running, message, f"messages went from case to case more than {MAX_HOPS} times in "
                                             "one step (do two processes answer each other without end?)")
            return
        session.info[_HOPS] = hops + 1
        nowhere = None
        try:
            reached = _correlate(session, starter, message.name, sender.business_key, {}, message.payload,
                                 all_=False, sender=row.id)
        except NotFound as exc:
            reached, nowhere = [], str(exc)
        except Conflict as exc:
            if isinstance(exc, CaseChanged):
                raise
            _stop(session, running, message, str(exc))
            return
        finally:
            session.info[_HOPS] = hops
        audit.record(session, EventKind.MESSAGE_SENT, instance=row, element_id=message.element_id,
                     name=_sender_name(running, message), message=message.name, business_key=sender.business_key,
                     to_cases=[c.instance_id for c in reached], **({"undelivered": nowhere} if nowhere else {}))


def _stop(session: Session, running: RunningInstance, message: SentMessage, why: str) -> None:
    """The sender stops as an incident naming the throw; one that ended already has it said in its history."""
    row = running.row
    if row.status != InstanceStatus.RUNNING:
        audit.record(session, EventKind.MESSAGE_SENT, instance=row, element_id=message.element_id,
                     name=_sender_name(running, message), message=message.name, to_cases=[], undelivered=why)
        return
    write_instance(session, row, status=InstanceStatus.INCIDENT)
    incident = Incident(message.element_id, _sender_name(running, message),
                        f"the message “{message.name}” reached no case: {why}")
    audit.record(session, EventKind.INCIDENT, instance=row, element_id=incident.element_id, name=incident.name,
                 message=incident.message)
    notify.incident(session, row, incident.name, incident.message)


def _sender_name(running: RunningInstance, message: SentMessage) -> str:
    return running.definition.step_name(message.element_id) if message.element_id else message.name
