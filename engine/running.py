"""The running instance: load a case's workflow, run its automatic steps, save it.

:class:`RunningInstance` knows SpiffWorkflow and the case's rows, nothing else: it returns
what a step changed (:class:`StepResult`) and leaves the audit events and notifications
of that change to the action that caused it (:func:`engine.actions.record_step`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy.orm import Session

from . import core, external_queue, inbox, persistence, subscriptions, timers
from . import definitions as defs
from .clock import utcnow
from .definitions import ParsedDefinition
from .errors import ScriptError
from .rows import InstanceRow, insert_instance, read_instance_state, write_instance
from .vocabulary import InstanceStatus


@dataclass(frozen=True, slots=True)
class GatewayDecision:
    """An exclusive gateway chose a flow."""

    element_id: str
    name: str
    flow: str | None
    to: str
    to_name: str
    condition: str


@dataclass(frozen=True, slots=True)
class FiredTimer:
    element_id: str
    name: str
    #: the task a boundary timer is attached to (None for an intermediate timer)
    attached_to: str | None
    interrupting: bool


@dataclass(frozen=True, slots=True)
class Incident:
    """Why a case stopped: a condition or script failed or was refused, or the process went round
    without end. The process owner fixes the diagram (a new version) or the cause, then retries."""

    element_id: str | None
    name: str
    message: str


#: Automatic steps one run may take: a process that goes round without waiting for anyone or anything
#: (a script and a gateway in a loop, a call activity calling its own process) stops as an incident.
#: SpiffWorkflow itself gives up about 1,000 steps into such a loop and reports the workflow finished.
MAX_AUTOMATIC_STEPS = 400
#: How deep call activities may nest.
MAX_CALL_DEPTH = 20


class _Stopped(Exception):
    def __init__(self, incident: Incident):
        super().__init__(incident.message)
        self.incident = incident


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message a throw event, send task or message end event sent and no step of the case caught: it goes to
    other cases (:func:`engine.messages.deliver_sent`)."""

    element_id: str | None
    name: str
    payload: dict[str, Any]


@dataclass
class StepResult:
    """What running and saving a case changed."""

    decisions: list[GatewayDecision] = field(default_factory=list)
    timers_fired: list[FiredTimer] = field(default_factory=list)
    created: list[inbox.NewTask] = field(default_factory=list)
    cancelled: list[inbox.ClosedTask] = field(default_factory=list)
    ended: bool = False
    #: the case stopped at this step (its status is now ``incident``)
    incident: Incident | None = None
    #: external tasks that began to wait for a worker, and those the step took away
    external_created: list[external_queue.ExternalRef] = field(default_factory=list)
    external_cancelled: list[external_queue.ExternalRef] = field(default_factory=list)
    #: messages for other cases, in the order they were thrown
    messages_sent: list[SentMessage] = field(default_factory=list)


class RunningInstance:
    """A case's row with its live SpiffWorkflow workflow and parsed definition."""

    def __init__(self, row: InstanceRow, workflow: BpmnWorkflow, definition: ParsedDefinition):
        self.row = row
        self.workflow = workflow
        self.definition = definition
        self._decisions: list[GatewayDecision] = []
        self._timers: list[FiredTimer] = []
        self._ended = False
        self._incident: Incident | None = None
        #: the message catches the case's subscription rows hold (None: unknown, they are rewritten at save)
        self._waiting_before: frozenset[subscriptions.Waiting] | None = self._waiting()
        #: (element id, message name) of each message throw that ran, to name the sender of what was thrown
        self._throws: list[tuple[str, str]] = []
        self._outbox: list[SentMessage] = []

    def _waiting(self) -> frozenset[subscriptions.Waiting]:
        """The message catches the workflow waits at (a process without message catches costs nothing)."""
        return subscriptions.waiting(self.workflow) if self.definition.message_catches else frozenset()

    def forget_subscriptions(self) -> None:
        """The workflow was replaced (moved to another version): rewrite the subscription rows at save."""
        self._waiting_before = None

    @classmethod
    def load(cls, session: Session, row: InstanceRow, state: str, definition: ParsedDefinition) -> RunningInstance:
        return cls(row, core.of(session).load(state, definition), definition)

    @classmethod
    def open(cls, session: Session, instance_id: int) -> RunningInstance:
        """Read the case's row and state and load it on the definition it runs on.

        :raises NotFound: no such case
        """
        row, state = read_instance_state(session, instance_id)
        return cls.load(session, row, state, defs.parsed_by_id(session, row.definition_id, core.bound_calls(state)))

    def run(self) -> None:
        """Run automatic steps until the case waits for people or timers, ends, or stops as an incident
        (a condition or script failed, or the process went round without end): never an error."""
        steps, current = 0, None

        def will_complete(task: Any) -> None:
            nonlocal current
            current = task

        def did_complete(task: Any) -> None:
            nonlocal steps
            steps += 1
            spec = task.task_spec
            if steps > MAX_AUTOMATIC_STEPS:
                raise _Stopped(Incident(getattr(spec, "bpmn_id", None), _name(spec),
                                        f"the process ran {MAX_AUTOMATIC_STEPS} automatic steps without waiting for "
                                        "anyone or anything (an endless loop?)"))
            if getattr(task.workflow, "depth", 0) > MAX_CALL_DEPTH:
                raise _Stopped(Incident(getattr(spec, "bpmn_id", None), _name(spec),
                                        f"call activities nested more than {MAX_CALL_DEPTH} deep (does the process "
                                        "call itself?)"))
            if isinstance(spec, ExclusiveGateway):
                self._decisions.extend(self._decision(task))
            elif (message := subscriptions.thrown(spec)) is not None:
                self._throws.append((spec.bpmn_id, message))
            elif isinstance(getattr(spec, "event_definition", None), TimerEventDefinition):
                attached, interrupting = self.definition.boundaries.get(spec.bpmn_id, (None, False))
                self._timers.append(FiredTimer(spec.bpmn_id, spec.bpmn_name or spec.bpmn_id, attached,
                                               interrupting if attached else False))

        try:
            self.workflow.do_engine_steps(will_complete_task=will_complete, did_complete_task=did_complete)
        except _Stopped as stopped:
            self._stop(stopped.incident)
        except SpiffWorkflowException as exc:
            spec = getattr(getattr(exc, "task", None), "task_spec", None)
            self._stop(Incident(getattr(spec, "bpmn_id", None), _name(spec), str(exc).split("\n")[0][:1000]))
        except Exception as exc:  # noqa: BLE001 - SpiffWorkflow lets some failures out unwrapped (a timer whose
            # expression gave nothing fails on ``None.upper()``; a TypeError, a NameError): they stop the case too
            spec = getattr(current, "task_spec", None)
            self._stop(Incident(getattr(spec, "bpmn_id", None), _name(spec),
                                f"{type(exc).__name__}: {exc}".split("\n")[0][:1000]))

    def stop(self, incident: Incident) -> None:
        """Stop the case as an incident from outside a run (an external task's worker gave up)."""
        self._stop(incident)

    def _stop(self, incident: Incident) -> None:
        self.row.status = InstanceStatus.INCIDENT
        self._incident = incident

    def _decision(self, gateway: Any) -> list[GatewayDecision]:
        source = gateway.task_spec.bpmn_id
        decisions = []
        for child in gateway.children:
            target = self._branch_target(source, child.task_spec)
            flow, condition = self.definition.flows.get((source, target), (None, None))
            decisions.append(GatewayDecision(source, gateway.task_spec.bpmn_name or source, flow, target,
                                             self.definition.step_name(target), condition or "default"))
        return decisions

    def _branch_target(self, source: str, spec: Any) -> str | None:
        """The BPMN element a gateway's branch leads to. Before a task with boundary events SpiffWorkflow puts
        a split of its own, with no BPMN id: look past it (breadth first, a few levels) for the element that a
        sequence flow from the gateway reaches."""
        level, found = [spec], None
        for _ in range(4):
            for s in level:
                if s.bpmn_id is not None and (source, s.bpmn_id) in self.definition.flows:
                    return s.bpmn_id
                found = found or s.bpmn_id
            if found:
                return found
            level = [out for s in level for out in s.outputs]
        return None

    def save(self, session: Session, open_before: set[str] | None = None, **columns: Any) -> StepResult:
        """Write the state and data back, bring the inbox projection up to date.

        :param open_before: the SpiffWorkflow ids of the open task rows, when the caller knows them
        :param columns: more columns of the instance row, written in the same guarded UPDATE
        :raises CaseChanged: another transaction changed the case since it was read; nothing was written
        """
        row, engine = self.row, core.of(session)
        self._resolve_tasks(session)
        next_timer_at = self._settle()
        archived = persistence.compact(self.workflow, engine.serializer)
        write_instance(session, row, state=engine.dump(self.workflow, self.definition.bound), data=row.data,
                       status=row.status, ended_at=row.ended_at, next_timer_at=next_timer_at, **columns)
        if archived is not None:  # after the guarded write: a stale case writes nothing
            persistence.archive(session, row.id, archived)
        return self._result(session, open_before)

    def insert(self, session: Session, *, started_at: datetime, business_key: str | None) -> StepResult:
        """Insert a new case with its first state (one INSERT), and its first task rows."""
        self._resolve_tasks(session)
        self.row.next_timer_at = self._settle()
        insert_instance(session, self.row, state=core.of(session).dump(self.workflow, self.definition.bound),
                        started_at=started_at,
                        business_key=business_key)
        self._waiting_before = frozenset()
        return self._result(session, set())

    def _resolve_tasks(self, session: Session) -> None:
        """Evaluate the JUEL attributes of the user tasks that became ready; a task whose candidate groups map
        to no role (or whose expression fails) is put in error and stops the case as an incident: the retry
        evaluates it again, after the administrator mapped the group."""
        for task, message in inbox.resolve_dynamic(session, self.workflow, self.definition):
            task.error()
            if self._incident is None:
                self._stop(Incident(task.task_spec.bpmn_id, _name(task.task_spec), message[:1000]))

    def _settle(self) -> datetime | None:
        """Take the data from the workflow, end the case if the workflow ended; the next timer's due time."""
        row, workflow = self.row, self.workflow
        self._outbox = self._sent()  # before the state is written: a message is sent once
        row.data = _public_data(workflow.last_task.data if workflow.last_task else {})
        if workflow.is_completed() and row.status == InstanceStatus.RUNNING:
            row.status, row.ended_at = InstanceStatus.COMPLETED, utcnow()
            self._ended = True
            return None
        return timers.next_timer_at(workflow)

    def _result(self, session: Session, open_before: set[str] | None) -> StepResult:
        created, cancelled = inbox.sync(session, self.row, self.workflow, self.definition, open_before)
        external_created, external_cancelled = external_queue.sync(session, self.row, self.workflow, self.definition)
        waiting_now = self._waiting()
        subscriptions.sync(session, self.row.id, self._waiting_before, waiting_now)
        self._waiting_before = waiting_now
        result = StepResult(self._decisions, self._timers, created, cancelled, self._ended, self._incident,
                            external_created, external_cancelled, self._outbox)
        self._decisions, self._timers, self._ended, self._incident, self._throws, self._outbox = (
            [], [], False, None, [], [])
        return result

    def complete(self, session: Session, task: Any, values: dict[str, Any],
                 open_before: set[str] | None = None) -> tuple[StepResult, dict[str, list[Any]]]:
        """Complete ``task`` (a ready user task, or an external task a worker started) with ``values``
        merged into its data, run the case on and save it (:meth:`save`).

        :returns: what the step changed, and the process variables it changed (:func:`data_changes`) for
            the completion's audit event
        :raises ScriptError: SpiffWorkflow refused to complete the task; nothing is saved
        :raises CaseChanged: see :meth:`save`
        """
        before = dict(self.row.data)
        task.data.update(values)
        try:
            if task.state == TaskState.STARTED:  # an external task: SpiffWorkflow started it and waits
                task.complete()
            else:
                task.run()
        except SpiffWorkflowException as exc:
            raise ScriptError(f"The process could not continue: {exc}") from exc
        self.run()
        result = self.save(session, open_before)
        return result, data_changes(before, self.row.data)

    def _sent(self) -> list[SentMessage]:
        """The messages thrown since the case was loaded that no step of its own caught, with their senders."""
        sent = []
        throws = list(self._throws)
        for name, payload in subscriptions.drain(self.workflow):
            element = next((t for t in throws if t[1] == name), None)
            if element is not None:
                throws.remove(element)
            sent.append(SentMessage(element[0] if element else None, name, _public_data(payload)))
        return sent

    def retry(self) -> None:
        """Run again from the steps that failed (their state goes back to ready): the owner fixed the cause."""
        for task in self.workflow.get_tasks(state=TaskState.ERROR):
            task._set_state(TaskState.READY)
        self.row.status = InstanceStatus.RUNNING
        self.run()


def data_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """Every process variable the step changed: name → [before, after] (``None`` when absent)."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def _name(spec: Any) -> str:
    """How the history names a step: its BPMN name, else its id."""
    return getattr(spec, "bpmn_name", None) or getattr(spec, "bpmn_id", None) or "the process"


def _public_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("_") and not callable(v)}
