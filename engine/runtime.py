"""Start instances and move their tasks: the operations behind every user action.

Each public function is one unit of work on the caller's session: it loads what it
needs, acts, and flushes; the caller commits. The instance row carries a version
column, so two people acting on the same instance at once cannot both win: the
loser's flush fails, is rolled back, and gets a clear answer (who completed the task,
and when) instead of a half-written instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.defaults import ExclusiveGateway
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.exc import StaleDataError

from . import audit, forms, notify, persistence, timers
from . import definitions as defs
from . import tasks as projection
from .assignment import READ_ALL_ROLES, check_may_work_on, is_candidate, is_separated, may_view_task
from .clock import utcnow
from .db import Event, HumanTask, Process, ProcessDefinition, ProcessInstance, User, UserRole
from .definitions import ParsedDefinition, UserTaskInfo
from .errors import (
    Conflict,
    InvalidForm,
    NotAllowed,
    NotFound,
    ScriptError,
    TaskAlreadyCompleted,
    TaskNoLongerOpen,
)

MAX_ATTEMPTS = 5


class _StaleRead(Exception):
    """Another transaction changed the instance between our reads; the operation is retried."""


@dataclass
class RunningInstance:
    """An instance row with its live SpiffWorkflow workflow and parsed definition."""

    row: ProcessInstance
    workflow: BpmnWorkflow
    definition: ParsedDefinition

    #: timer events fired by the last run (the inbox notices of new tasks then say "escalated")
    timers_fired: list[Any] = field(default_factory=list)

    def run_until_user_input_required(self, session: Session) -> None:
        """Run automatic steps; gateway decisions and fired timers go into the audit log."""
        decisions: list[Any] = []

        def did_complete(task: Any) -> None:
            if isinstance(task.task_spec, ExclusiveGateway):
                decisions.append(task)
            elif isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition):
                self.timers_fired.append(task)

        try:
            self.workflow.do_engine_steps(did_complete_task=did_complete)
        except SpiffWorkflowException as exc:
            raise ScriptError(f"The process could not continue: {exc}") from exc
        for gateway in decisions:
            source = gateway.task_spec.bpmn_id
            for child in gateway.children:
                target = child.task_spec.bpmn_id
                flow, condition = self.definition.flows.get((source, target), (None, None))
                audit.record(session, "gateway_decision", instance=self.row, element_id=source,
                             name=gateway.task_spec.bpmn_name or source, flow=flow, to=target,
                             to_name=self.definition.step_name(target), condition=condition or "default")
        for timer in self.timers_fired:
            element = timer.task_spec.bpmn_id
            attached, interrupting = self.definition.boundaries.get(element, (None, False))
            audit.record(session, "timer_fired", instance=self.row, element_id=element,
                         name=timer.task_spec.bpmn_name or element, attached_to=attached,
                         interrupting=interrupting if attached else None)

    def save(self, session: Session) -> list[HumanTask]:
        """Write the state and data back, bring the inbox projection up to date, notify people."""
        self.row.state = persistence.dump(self.workflow)
        self.row.data = _public_data(self.workflow.last_task.data if self.workflow.last_task else {})
        self.row.next_timer_at = timers.next_timer_at(self.workflow)
        created = projection.sync(session, self.row, self.workflow, self.definition)
        escalated = bool(self.timers_fired)
        for task in created:
            notify.task_created(session, task, self.row, escalated=escalated)
        self._remind_holders(session, created)
        if self.workflow.is_completed() and self.row.status == "running":
            self.row.status = "completed"
            self.row.ended_at = utcnow()
            self.row.next_timer_at = None
            audit.record(session, "ended", instance=self.row)
            notify.request_finished(session, self.row)
        self.timers_fired = []
        return created

    def _remind_holders(self, session: Session, created: list[HumanTask]) -> None:
        """A non-interrupting deadline on a still-open task that created no new task is a reminder."""
        if created:
            return
        for timer in self.timers_fired:
            attached, interrupting = self.definition.boundaries.get(timer.task_spec.bpmn_id, (None, True))
            if attached and not interrupting:
                for task in session.scalars(select(HumanTask).where(
                        HumanTask.instance_id == self.row.id, HumanTask.element_id == attached,
                        HumanTask.status == "open")):
                    notify.reminder(session, task, self.row, timer.task_spec.bpmn_name or "deadline")


def _public_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("_") and not callable(v)}


def load_instance(session: Session, instance: ProcessInstance) -> RunningInstance:
    definition = defs.parsed(session, instance.definition)
    return RunningInstance(instance, persistence.load(instance.state, definition), definition)


# --- starting -------------------------------------------------------------------------


@dataclass
class StartForm:
    process: Process
    definition: ProcessDefinition
    form: forms.Form
    documentation: str
    values: dict[str, Any]


def startable_processes(session: Session, actor: User) -> list[Process]:
    """Processes ``actor`` may start (the catalogue's starter roles), by title."""
    processes = session.scalars(select(Process).order_by(Process.title))
    return [p for p in processes if actor.role_keys.intersection(p.starter_roles or [])]


def _startable(session: Session, actor: User, process_key: str) -> Process:
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if not actor.role_keys.intersection(process.starter_roles or []):
        raise NotAllowed(f"Your roles may not start “{process.title}”.")
    return process


def start_form(session: Session, actor: User, process_key: str) -> StartForm:
    process = _startable(session, actor, process_key)
    definition = defs.latest_definition(session, process_key)
    parsed = defs.parsed(session, definition)
    values = forms.initial_values(parsed.start_form, {})
    return StartForm(process, definition, parsed.start_form, parsed.start_documentation, values)


def start_process(session: Session, actor: User, process_key: str, values: dict[str, Any]) -> ProcessInstance:
    """Start the latest version of ``process_key`` with the start form's ``values``.

    :raises NotAllowed: when none of ``actor``'s roles may start it
    :raises InvalidForm: with per-field messages
    """
    process = _startable(session, actor, process_key)
    definition = defs.latest_definition(session, process_key)
    parsed = defs.parsed(session, definition)
    data = forms.validate(parsed.start_form, values, {})
    title = str(data.get("title") or "").strip() or f"{process.title} by {actor.full_name}"
    return _launch(session, actor, process, definition, parsed, data, title)


def start_scheduled(session: Session, actor: User, process_key: str, occurrence: datetime) -> ProcessInstance:
    """Start a process whose start event is a timer, for the given occurrence (the worker calls this)."""
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    definition = defs.latest_definition(session, process_key)
    parsed = defs.parsed(session, definition)
    data = forms.validate(parsed.start_form, {}, {})
    return _launch(session, actor, process, definition, parsed, data, f"{process.title} {occurrence:%Y-%m-%d}")


def _launch(session: Session, actor: User, process: Process, definition: ProcessDefinition,
            parsed: ParsedDefinition, data: dict[str, Any], title: str) -> ProcessInstance:
    if parsed.initiator_variable:  # camunda:initiator names the variable that holds the starter
        data[parsed.initiator_variable] = actor.username
    workflow = persistence.new_workflow(parsed)
    for start_task in workflow.get_tasks():
        start_task.data.update(data)
    if parsed.start_timer is not None:
        _fire_start_timer(workflow, parsed.start_timer)
    instance = ProcessInstance(
        definition_id=definition.id,
        definition=definition,
        process_key=process.key,
        title=title[:300],
        business_key=str(data["business_key"]) if data.get("business_key") else None,
        status="running",
        started_by_id=actor.id,
        started_by=actor,
        started_at=utcnow(),
        state="",
        data=data,
    )
    session.add(instance)
    session.flush()
    audit.record(session, "started", instance=instance, actor=actor, version=definition.version, data=data)
    running = RunningInstance(instance, workflow, parsed)
    running.run_until_user_input_required(session)
    if parsed.start_timer is not None:  # the start timer's cycle is spent: let the start event complete
        workflow.refresh_timers()
        running.run_until_user_input_required(session)
    running.save(session)
    session.flush()
    return instance


def _fire_start_timer(workflow: BpmnWorkflow, start_timer: tuple[str, str, str]) -> None:
    """deptflow schedules timer start events itself (one instance per occurrence); SpiffWorkflow
    would run every past cycle inside one instance. So the start event is told it fired once, now."""
    kind, _text, element = start_timer
    past = (utcnow() - timedelta(seconds=1)).replace(tzinfo=UTC).isoformat()
    for task in workflow.get_tasks():
        if getattr(task.task_spec, "bpmn_id", None) == element:
            value: Any = {"cycles": 1, "next": past, "duration": 1.0} if kind == "timeCycle" else past
            task._set_internal_data(event_value=value)


# --- tasks ----------------------------------------------------------------------------


@dataclass
class TaskView:
    """Everything the task page shows."""

    task: HumanTask
    instance: ProcessInstance
    info: UserTaskInfo | None
    data: dict[str, Any]
    values: dict[str, Any]
    labels: dict[str, str]
    choices: dict[str, dict[str, str]]
    can_complete: bool
    can_claim: bool
    can_unclaim: bool
    delegates: list[User] = field(default_factory=list)
    separated: bool = False

    @property
    def form(self) -> forms.Form:
        return self.info.form if self.info else forms.Form()


def _get_task(session: Session, task_id: int, *, with_state: bool = False) -> HumanTask:
    """The task row and its instance, fresh from the database (``with_state``: the workflow state too)."""
    options = [joinedload(HumanTask.instance).undefer(ProcessInstance.state)] if with_state else []
    task = session.get(HumanTask, task_id, populate_existing=True, options=options)
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    return task


def _check_open(task: HumanTask) -> None:
    if task.status == "completed":
        who = task.completed_by.full_name if task.completed_by else "someone"
        raise TaskAlreadyCompleted(task.name, who, task.completed_at)
    if task.status != "open":
        raise TaskNoLongerOpen(f"“{task.name}” is no longer open (it was {task.status}).")
    if task.instance.status != "running":
        raise TaskNoLongerOpen(f"The case “{task.instance.title}” is {task.instance.status}; its tasks wait.")


def task_view(session: Session, actor: User, task_id: int) -> TaskView:
    task = _get_task(session, task_id)
    if not may_view_task(actor, task):
        raise NotAllowed("This task belongs to another role.")
    instance = task.instance
    parsed = defs.parsed(session, instance.definition)
    info = parsed.user_tasks.get(task.element_id)
    data = dict(instance.data or {})
    if task.status == "completed" and task.submitted:
        data.update(task.submitted)
    values = forms.initial_values(info.form, data) if info else {}
    is_open = task.status == "open"
    separated = is_separated(session, actor, task)
    may_act = not separated and (
        task.assignee_id == actor.id or (task.assignee_id is None and is_candidate(actor, task)))
    return TaskView(
        task=task,
        instance=instance,
        info=info,
        data=data,
        values=values,
        labels=field_labels(parsed),
        choices=field_choices(parsed),
        can_complete=is_open and may_act,
        can_claim=is_open and not separated and task.assignee_id is None and is_candidate(actor, task),
        can_unclaim=is_open and task.assignee_id == actor.id,
        delegates=[u for u in delegation_candidates(session, task) if u.id != actor.id]
        if is_open and task.assignee_id == actor.id else [],
        separated=separated,
    )


def _all_fields(parsed: ParsedDefinition) -> list[forms.FormField]:
    fields = list(parsed.start_form.fields)
    for info in parsed.user_tasks.values():
        fields.extend(info.form.fields)
    return fields


def field_labels(parsed: ParsedDefinition) -> dict[str, str]:
    """Process variable → the label of the first form field that sets it."""
    labels: dict[str, str] = {}
    if parsed.initiator_variable:
        labels[parsed.initiator_variable] = "Started by (username)"
    for f in _all_fields(parsed):
        labels.setdefault(f.id, f.label)
    return labels


def field_choices(parsed: ParsedDefinition) -> dict[str, dict[str, str]]:
    """Enum variable → option id → option name, to show "Product quality" rather than "quality"."""
    choices: dict[str, dict[str, str]] = {}
    for f in _all_fields(parsed):
        if f.options:
            choices.setdefault(f.id, {}).update(dict(f.options))
    return choices


def claim(session: Session, actor: User, task_id: int) -> HumanTask:
    """Take an open task of one of ``actor``'s roles; a task someone else holds is refused."""
    task = _get_task(session, task_id)
    _check_open(task)
    if task.assignee_id == actor.id:
        return task
    check_may_work_on(session, actor, task)
    now = utcnow()
    taken = session.execute(
        update(HumanTask)
        .where(HumanTask.id == task.id, HumanTask.status == "open", HumanTask.assignee_id.is_(None))
        .values(assignee_id=actor.id, claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    task = _get_task(session, task_id)
    if not taken:
        _check_open(task)
        raise Conflict(f"“{task.name}” was just claimed by {task.assignee.full_name if task.assignee else 'someone'}.")
    audit.record(session, "claimed", instance=task.instance, actor=actor, task=task)
    session.flush()
    return task


def unclaim(session: Session, actor: User, task_id: int) -> HumanTask:
    """Give a task back to its roles' shared queue."""
    task = _get_task(session, task_id)
    _check_open(task)
    if task.assignee_id != actor.id:
        raise NotAllowed(f"“{task.name}” is not assigned to you.")
    task.assignee_id = None
    task.assignee = None
    task.claimed_at = None
    audit.record(session, "unclaimed", instance=task.instance, actor=actor, task=task)
    session.flush()
    return task


def delegation_candidates(session: Session, task: HumanTask) -> list[User]:
    """Active users holding one of the task's roles (not the starter, if the task is separated), by name."""
    query = (select(User).join(UserRole, UserRole.user_id == User.id)
             .where(UserRole.role_key.in_(task.candidate_roles), User.active.is_(True))
             .order_by(User.full_name).distinct())
    return [u for u in session.scalars(query) if not is_separated(session, u, task)]


def delegate(session: Session, actor: User, task_id: int, to_username: str) -> HumanTask:
    """Hand a task to a colleague who holds one of its roles (assignee or administrator only)."""
    task = _get_task(session, task_id)
    _check_open(task)
    if task.assignee_id != actor.id and "admin" not in actor.role_keys:
        raise NotAllowed(f"Only the person working on “{task.name}” may delegate it.")
    target = session.scalar(select(User).where(User.username == to_username.strip(), User.active.is_(True)))
    if target is None or not is_candidate(target, task) or is_separated(session, target, task):
        raise InvalidForm({"to": "Choose a colleague who holds the task's role."}, {"to": to_username})
    previous = task.assignee
    task.assignee_id, task.assignee, task.claimed_at = target.id, target, utcnow()
    audit.record(session, "delegated", instance=task.instance, actor=actor, task=task,
                 **{"from": previous.username if previous else None, "to": target.username})
    session.flush()
    return task


def complete_task(session: Session, actor: User, task_id: int, values: dict[str, Any]) -> HumanTask:
    """Validate ``values`` against the task's form, complete it and run the process on.

    :raises InvalidForm: per-field errors; nothing is saved
    :raises TaskAlreadyCompleted: someone else completed it first (says who and when)
    :raises NotAllowed: the task belongs to another role or person
    """
    for _attempt in range(MAX_ATTEMPTS):
        task = _get_task(session, task_id, with_state=True)
        _check_open(task)
        check_may_work_on(session, actor, task)
        try:
            _complete(session, actor, task, values)
            session.flush()
            return task
        except (_StaleRead, StaleDataError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and "locked" not in str(exc).lower():
                raise
            session.rollback()
    raise Conflict("The case is busy; please try again.")


def _complete(session: Session, actor: User, task: HumanTask, values: dict[str, Any]) -> None:
    instance = task.instance  # read together with the task row (populate_existing), state included
    if instance.status != "running":
        raise _StaleRead  # suspended or cancelled meanwhile: the retry reports it
    running = load_instance(session, instance)
    spiff_task = running.workflow.get_task_from_id(UUID(task.spiff_task_id))
    if spiff_task.state != TaskState.READY:
        raise _StaleRead  # the instance moved on after the task row was read: re-read both
    info = running.definition.user_tasks.get(task.element_id)
    form = info.form if info else forms.Form()
    submitted = forms.validate(form, values, spiff_task.data)
    before = dict(instance.data or {})
    spiff_task.data.update(submitted)
    try:
        spiff_task.run()
    except SpiffWorkflowException as exc:
        raise ScriptError(f"The process could not continue: {exc}") from exc
    completed = audit.record(session, "completed", instance=instance, actor=actor, task=task, values=submitted)
    running.run_until_user_input_required(session)
    now = utcnow()
    if task.assignee_id is None:
        task.assignee_id, task.claimed_at = actor.id, now
    task.status = "completed"
    task.completed_by_id = actor.id
    task.completed_at = now
    task.submitted = submitted
    running.save(session)
    completed.data = {**completed.data, "changes": _changes(before, instance.data)}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """Every process variable the step changed: name → [before, after] (``None`` when absent)."""
    keys = sorted(set(before) | set(after))
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


# --- reading --------------------------------------------------------------------------


@dataclass
class RequestRow:
    instance: ProcessInstance
    open_tasks: list[HumanTask]

    @property
    def current_step(self) -> str:
        return ", ".join(t.name for t in self.open_tasks) or ("Finished" if self.instance.ended_at else "—")


def my_requests(session: Session, actor: User, limit: int = 200) -> list[RequestRow]:
    """Instances ``actor`` started, newest first, with where each stands now."""
    instances = list(
        session.scalars(
            select(ProcessInstance)
            .where(ProcessInstance.started_by_id == actor.id)
            .order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc())
            .limit(limit)
        )
    )
    open_by_instance = projection.open_tasks_of(session, [i.id for i in instances])
    return [RequestRow(i, open_by_instance[i.id]) for i in instances]


@dataclass
class InstanceDetail:
    instance: ProcessInstance
    events: list[Event]
    tasks: list[HumanTask]
    labels: dict[str, str]
    choices: dict[str, dict[str, str]]
    definition_name: str = ""
    open_tasks: list[HumanTask] = field(default_factory=list)


def instance_detail(session: Session, actor: User, instance_id: int) -> InstanceDetail:
    """Data, tasks and event log of one instance, for its participants and auditors."""
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    tasks = list(
        session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id).order_by(HumanTask.id))
    )
    events = audit.events_of(session, instance_id)
    if not may_view_instance(actor, instance, tasks, events):
        raise NotAllowed("You took no part in this case.")
    parsed = defs.parsed(session, instance.definition)
    return InstanceDetail(
        instance=instance,
        events=events,
        tasks=tasks,
        labels=field_labels(parsed),
        choices=field_choices(parsed),
        definition_name=parsed.name,
        open_tasks=[t for t in tasks if t.status == "open"],
    )


def may_view_instance(actor: User, instance: ProcessInstance, tasks: list[HumanTask], events: list[Event]) -> bool:
    if instance.started_by_id == actor.id or actor.role_keys & READ_ALL_ROLES:
        return True
    if any(e.actor_id == actor.id for e in events):
        return True
    return any(may_view_task(actor, t) for t in tasks)
