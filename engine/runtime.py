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
from sqlalchemy import bindparam, func, null, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

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
from .sql import expire, run

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

    def save(self, session: Session, open_before: set[str] | None = None) -> list[projection.NewTask]:
        """Write the state and data back, bring the inbox projection up to date, notify people.

        An ORM row is written by the session's flush (its version column guards it); an
        :class:`InstanceSnapshot` by one ``UPDATE … WHERE version_id = …`` here.
        """
        row = self.row
        # A new instance's row is inserted with its first state (nothing to compact yet): one INSERT.
        fresh = row.id is None
        state = persistence.dump(self.workflow) if fresh else persistence.save(session, row.id, self.workflow)
        row.data = _public_data(self.workflow.last_task.data if self.workflow.last_task else {})
        next_timer_at = timers.next_timer_at(self.workflow)
        ended = self.workflow.is_completed() and row.status == "running"
        if ended:
            row.status, row.ended_at, next_timer_at = "completed", utcnow(), None
        if isinstance(row, ProcessInstance):
            row.state, row.next_timer_at = state, next_timer_at
            session.flush()  # the task rows below refer to it
        else:
            row.write(session, state=state, next_timer_at=next_timer_at)
        created = projection.sync(session, row, self.workflow, self.definition, open_before)
        escalated = bool(self.timers_fired)
        for task in created:
            notify.task_created(session, task, row, escalated=escalated)
        self._remind_holders(session, created)
        if ended:
            audit.record(session, "ended", instance=row)
            notify.request_finished(session, row)
        self.timers_fired = []
        return created

    def _remind_holders(self, session: Session, created: list[projection.NewTask]) -> None:
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
    session.add(instance)  # inserted by save(), state included: one INSERT
    audit.record(session, "started", instance=instance, actor=actor, version=definition.version, data=data)
    running = RunningInstance(instance, workflow, parsed)
    running.run_until_user_input_required(session)
    if parsed.start_timer is not None:  # the start timer's cycle is spent: let the start event complete
        workflow.refresh_timers()
        running.run_until_user_input_required(session)
    running.save(session, open_before=set())
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


@dataclass(slots=True)
class InstanceSnapshot:
    """The columns of an instance row that a completion reads and writes, read with the task row.

    Completing a task is the busiest write: it reads and writes plain columns (SQLAlchemy Core)
    instead of ORM objects, and guards the instance with its version column by hand.
    """

    id: int
    status: str
    title: str
    process_key: str
    started_by_id: int
    version_id: int
    data: dict[str, Any]
    ended_at: datetime | None = None

    def write(self, session: Session, state: str, next_timer_at: datetime | None) -> None:
        """``UPDATE`` the row if nobody changed it since it was read, else :class:`_StaleRead`."""
        written = run(session, _WRITE_INSTANCE, {
            "instance_id": self.id, "read_version": self.version_id, "new_version": self.version_id + 1,
            "new_data": self.data, "new_status": self.status, "new_ended_at": self.ended_at,
            "new_state": state, "new_timer_at": next_timer_at}).rowcount
        if not written:
            raise _StaleRead
        self.version_id += 1
        expire(session, ProcessInstance, self.id)


@dataclass(slots=True)
class TaskSnapshot:
    """A task row with its instance (see :class:`InstanceSnapshot`), as a claim or completion reads it."""

    id: int
    name: str
    element_id: str
    spiff_task_id: str
    status: str
    assignee_id: int | None
    candidate_roles: list[str]
    completed_by_id: int | None
    completed_at: datetime | None
    instance: InstanceSnapshot
    state: str | None  # only when read for a completion
    definition_id: int
    sha256: str
    separated_tasks: list[str]


@dataclass(frozen=True, slots=True)
class CompletedTask:
    """What the caller of :func:`complete_task` learns: the task, its case, and what became ready."""

    id: int
    name: str
    instance_id: int
    instance_title: str
    created: list[projection.NewTask]
    status: str = "completed"


_instances = ProcessInstance.__table__
_WRITE_INSTANCE = (
    update(_instances)
    .where(_instances.c.id == bindparam("instance_id"), _instances.c.version_id == bindparam("read_version"))
    .values(version_id=bindparam("new_version"), data=bindparam("new_data", type_=_instances.c.data.type),
            status=bindparam("new_status"), ended_at=bindparam("new_ended_at"), state=bindparam("new_state"),
            next_timer_at=bindparam("new_timer_at"))
)
_tasks = HumanTask.__table__
_CLOSE_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"), _tasks.c.status == "open")
    .values(status="completed", completed_by_id=bindparam("actor_id"), completed_at=bindparam("now"),
            submitted=bindparam("values", type_=_tasks.c.submitted.type),
            assignee_id=func.coalesce(_tasks.c.assignee_id, bindparam("actor_id")),
            claimed_at=func.coalesce(_tasks.c.claimed_at, bindparam("now")))
)
_CLAIM_TASK = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"), _tasks.c.status == "open", _tasks.c.assignee_id.is_(None))
    .values(assignee_id=bindparam("actor_id"), claimed_at=bindparam("now"))
)
def _task_read(state: Any) -> Any:
    return (
        select(HumanTask.id, HumanTask.name, HumanTask.element_id, HumanTask.spiff_task_id, HumanTask.status,
               HumanTask.assignee_id, HumanTask.candidate_roles, HumanTask.completed_by_id, HumanTask.completed_at,
               ProcessInstance.id, ProcessInstance.status, ProcessInstance.title, ProcessInstance.process_key,
               ProcessInstance.started_by_id, ProcessInstance.version_id, ProcessInstance.data, state,
               ProcessInstance.definition_id, ProcessDefinition.sha256, Process.separated_tasks)
        .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
        .join(Process, Process.key == ProcessInstance.process_key)
        .where(HumanTask.id == bindparam("task_id"))
    )


#: a completion runs the workflow and needs its state; a claim does not read it (it may be tens of KB)
_TASK_READ = {True: _task_read(ProcessInstance.state), False: _task_read(null())}


def _read_task(session: Session, task_id: int, *, with_state: bool = False) -> TaskSnapshot:
    row = run(session, _TASK_READ[with_state], {"task_id": task_id}).one_or_none()
    if row is None:
        raise NotFound(f"There is no task {task_id}.")
    instance = InstanceSnapshot(row[9], row[10], row[11], row[12], row[13], row[14], dict(row[15] or {}))
    return TaskSnapshot(*row[:9], instance, row[16], row[17], row[18], list(row[19] or []))


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


def _get_task(session: Session, task_id: int) -> HumanTask:
    """The task row and its instance, fresh from the database."""
    task = session.get(HumanTask, task_id, populate_existing=True)
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    return task


def _check_open(session: Session, task: HumanTask | TaskSnapshot) -> None:
    if task.status == "completed":
        who = session.scalar(select(User.full_name).where(User.id == task.completed_by_id)) or "someone"
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


def claim(session: Session, actor: User, task_id: int) -> TaskSnapshot:
    """Take an open task of one of ``actor``'s roles; a task someone else holds is refused."""
    task = _read_task(session, task_id)
    _check_open(session, task)
    if task.assignee_id == actor.id:
        return task
    check_may_work_on(session, actor, task, task.separated_tasks)
    taken = run(session, _CLAIM_TASK, {"task_id": task.id, "actor_id": actor.id, "now": utcnow()}).rowcount
    if not taken:
        task = _read_task(session, task_id)
        _check_open(session, task)
        holder = session.scalar(select(User.full_name).where(User.id == task.assignee_id)) or "someone"
        raise Conflict(f"“{task.name}” was just claimed by {holder}.")
    expire(session, HumanTask, task.id)
    task.assignee_id = actor.id
    audit.record(session, "claimed", instance=task.instance, actor=actor, task=task)
    return task


def unclaim(session: Session, actor: User, task_id: int) -> HumanTask:
    """Give a task back to its roles' shared queue."""
    task = _get_task(session, task_id)
    _check_open(session, task)
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
    _check_open(session, task)
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


def complete_task(session: Session, actor: User, task_id: int, values: dict[str, Any]) -> CompletedTask:
    """Validate ``values`` against the task's form, complete it and run the process on.

    :raises InvalidForm: per-field errors; nothing is saved
    :raises TaskAlreadyCompleted: someone else completed it first (says who and when)
    :raises NotAllowed: the task belongs to another role or person
    """
    for _attempt in range(MAX_ATTEMPTS):
        task = _read_task(session, task_id, with_state=True)
        _check_open(session, task)
        check_may_work_on(session, actor, task, task.separated_tasks)
        try:
            return _complete(session, actor, task, values)
        except (_StaleRead, OperationalError) as exc:
            if isinstance(exc, OperationalError) and "locked" not in str(exc).lower():
                raise
            session.rollback()
    raise Conflict("The case is busy; please try again.")


def _complete(session: Session, actor: User, task: TaskSnapshot, values: dict[str, Any]) -> CompletedTask:
    instance = task.instance
    if instance.status != "running":
        raise _StaleRead  # suspended or cancelled meanwhile: the retry reports it
    definition = defs.parsed_by_sha(session, task.definition_id, task.sha256)
    running = RunningInstance(instance, persistence.load(task.state, definition), definition)
    spiff_task = running.workflow.get_task_from_id(UUID(task.spiff_task_id))
    if spiff_task.state != TaskState.READY:
        raise _StaleRead  # the instance moved on after the task row was read: re-read both
    open_before = {str(t.id) for t in projection.ready_user_tasks(running.workflow)} - {task.spiff_task_id}
    info = definition.user_tasks.get(task.element_id)
    submitted = forms.validate(info.form if info else forms.Form(), values, spiff_task.data)
    before = instance.data
    spiff_task.data.update(submitted)
    try:
        spiff_task.run()
    except SpiffWorkflowException as exc:
        raise ScriptError(f"The process could not continue: {exc}") from exc
    completed = audit.record(session, "completed", instance=instance, actor=actor, task=task, values=submitted)
    running.run_until_user_input_required(session)
    now = utcnow()
    closed = run(session, _CLOSE_TASK, {"task_id": task.id, "actor_id": actor.id, "now": now,
                                         "values": submitted}).rowcount
    if not closed:
        raise _StaleRead  # completed or cancelled meanwhile: the retry reports by whom
    expire(session, HumanTask, task.id)
    projection.close(session, [task.id])
    created = running.save(session, open_before)
    completed.data = {**completed.data, "changes": _changes(before, instance.data)}
    return CompletedTask(task.id, task.name, instance.id, instance.title, created)


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
    #: the tasks whose page ``actor`` may open (the case page links those)
    viewable_task_ids: set[int] = field(default_factory=set)


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
        viewable_task_ids={t.id for t in tasks if may_view_task(actor, t)},
    )


def may_view_instance(actor: User, instance: ProcessInstance, tasks: list[HumanTask], events: list[Event]) -> bool:
    if instance.started_by_id == actor.id or actor.role_keys & READ_ALL_ROLES:
        return True
    if any(e.actor_id == actor.id for e in events):
        return True
    return any(may_view_task(actor, t) for t in tasks)
