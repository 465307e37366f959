"""Message catches: the ``message_subscriptions`` projection kept in step with each workflow (as
:mod:`engine.inbox` keeps ``human_tasks``), and how deptflow reads SpiffWorkflow's message events.

SpiffWorkflow parses Camunda diagrams into two classes of message event (the Camunda parser's events
carry a ``camunda:expression`` payload and put it into ``<task>_Response``; receive and send tasks get
the plain BPMN one), and one class never catches the other's messages. :func:`normalise` gives every
message element the plain class: a message's payload is a dict of variables merged into the catching
case's data (Camunda 7's ``correlateMessage`` with process variables). Correlation is deptflow's (by
business key or variables, see :mod:`engine.messages`), not SpiffWorkflow's correlation properties.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, insert
from sqlalchemy.orm import Session

from .clock import utcnow
from .db import MessageSubscription
from .sql import run

_rows = MessageSubscription.__table__

#: (SpiffWorkflow task id, BPMN element id, message name) of one catch a case waits at
Waiting = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class MessageElements:
    """The message elements of a process (from :func:`normalise`)."""

    #: catch element id → message name (intermediate catch, receive task, boundary, event sub-process start)
    catches: dict[str, str]
    #: start event id → message name: a message of that name starts a new case
    starts: dict[str, str]


def normalise(spec: Any, subprocess_specs: dict[str, Any]) -> MessageElements:
    """Give every message event of ``spec`` and its sub-processes SpiffWorkflow's plain BPMN message class
    (see the module's docstring); the process's message elements."""
    catches, starts = {}, {}
    for owner in (spec, *subprocess_specs.values()):
        for task_spec in owner.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            if definition is None:
                continue
            if isinstance(definition, MultipleEventDefinition):
                definition.event_definitions = [_plain(d) for d in definition.event_definitions]
                messages = [d for d in definition.event_definitions if isinstance(d, MessageEventDefinition)]
            elif isinstance(definition, MessageEventDefinition):
                task_spec.event_definition = _plain(definition)
                messages = [task_spec.event_definition]
            else:
                continue
            if isinstance(task_spec, ThrowingEvent):
                continue
            for message in messages:
                if owner is spec and isinstance(task_spec, StartEvent):
                    starts[task_spec.bpmn_id] = message.name
                else:
                    catches[task_spec.bpmn_id] = message.name
    return MessageElements(catches, starts)


def _plain(definition: Any) -> Any:
    if not isinstance(definition, MessageEventDefinition):
        return definition
    return MessageEventDefinition(definition.name, [], description=definition.description)


def waiting(workflow: BpmnWorkflow) -> frozenset[Waiting]:
    """The message catches the workflow waits at now (the process's own message start events apart:
    those start new cases). A branch of an event-based gateway is named by its catch element."""
    found = set()
    for task in workflow.event_manager.tasks.values():
        if task.state != TaskState.WAITING:
            continue
        spec = task.task_spec
        if isinstance(spec, StartEvent) and task.workflow is workflow:
            continue
        definition = spec.event_definition
        if isinstance(definition, MultipleEventDefinition):
            for index, item in enumerate(definition.event_definitions):
                if isinstance(item, MessageEventDefinition) and index < len(spec.outputs):
                    found.add((str(task.id), spec.outputs[index].bpmn_id or spec.bpmn_id, item.name))
        elif isinstance(definition, MessageEventDefinition):
            found.add((str(task.id), spec.bpmn_id, definition.name))
    return frozenset(found)


_DELETE = delete(_rows).where(_rows.c.instance_id == bindparam("instance_id"))
_INSERT = insert(_rows)


def sync(session: Session, instance_id: int, before: frozenset[Waiting] | None, now: frozenset[Waiting]) -> None:
    """Bring the case's subscription rows to ``now``: nothing at all when ``before`` (what the rows hold;
    ``None``: unknown) is the same, else one DELETE and one INSERT."""
    if before == now:
        return
    if before is None or before:
        run(session, _DELETE, {"instance_id": instance_id})
    if now:
        created = utcnow()
        run(session, _INSERT, [{"instance_id": instance_id, "spiff_task_id": task_id, "element_id": element,
                                "message_name": name, "created_at": created} for task_id, element, name in sorted(now)])


def cancel_all(session: Session, instance_id: int) -> None:
    """The case was cancelled: it waits for no message any more."""
    run(session, _DELETE, {"instance_id": instance_id})


def thrown(spec: Any) -> str | None:
    """The message a throw event, send task or message end event sends; None for other steps."""
    definition = getattr(spec, "event_definition", None)
    if isinstance(spec, ThrowingEvent) and isinstance(definition, MessageEventDefinition):
        return definition.name
    return None


def drain(workflow: BpmnWorkflow) -> list[tuple[str, dict[str, Any]]]:
    """The messages the workflow threw that no step of its own caught: (name, payload), in order. They go
    to other cases (:func:`engine.messages.deliver_thrown`); other events nobody caught are dropped."""
    return [(event.event_definition.name, dict(event.payload or {})) for event in workflow.get_events()
            if isinstance(event.event_definition, MessageEventDefinition)]


def names(items: Iterable[Waiting]) -> list[str]:
    return sorted({name for _task, _element, name in items})
