"""What people do to cases and tasks: start, claim, unclaim, delegate, complete.

Every action has the same shape: read the rows it needs (:mod:`engine.rows`), check
permission (:mod:`engine.access`), run the workflow where it moves, write through the
guarded helpers, record audit events and notifications. One action is one unit of work
on the caller's session: it never commits or rolls back. A concurrent change of the same
case raises :class:`~engine.rows.CaseChanged`; the caller runs the action again through
:func:`engine.rows.retrying`, and the second run says who won.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from . import attachments, audit, case_summaries, core, forms, notify
from . import definitions as defs
from .access import (
    check_may_work_on,
    is_candidate,
    is_separated,
    managed_roles,
    manages,
    may_delegate,
    paired_task_done_by,
)
from .clock import utcnow
from .db import HumanTask, Process, ProcessDefinition, User, UserRole
from .definitions import ParsedDefinition
from .errors import Conflict, InvalidForm, NotAllowed, NotFound, TaskAlreadyCompleted, TaskNoLongerOpen
from .inbox import COMPLETED_BY_KEY, ROLE_MEMBERS, NewTask, close, ready_user_tasks
from .permissions import can
from .rows import CaseChanged, InstanceRow, TaskRow, assign_task, close_task, read_task
from .running import RunningInstance, StepResult
from .sql import run
from .vocabulary import EventKind, InstanceStatus, Permission, TaskStatus

# --- starting -------------------------------------------------------------------------


def startable_processes(session: Session, actor: User) -> list[Process]:
    """Processes ``actor`` may start (their starter roles), by title."""
    processes = session.scalars(select(Process).order_by(Process.title))
    return [p for p in processes if actor.role_keys.intersection(p.starter_roles or [])]


def startable(session: Session, actor: User, process_key: str) -> Process:
    """The process, if ``actor`` may start it.

    :raises NotFound: no such process
    :raises NotAllowed: none of ``actor``'s roles may start it
    """
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    _check_may_start(actor, process.title, process.starter_roles)
    return process


def _check_may_start(actor: User, title: str, starter_roles: list[str] | None) -> None:
    if not actor.role_keys.intersection(starter_roles or []):
        raise NotAllowed(f"Your roles may not start “{title}”.")


#: The process and its latest published version, as a start needs them: one query
_LATEST = (select(Process.key, Process.title, Process.starter_roles, ProcessDefinition.id.label("definition_id"),
                  ProcessDefinition.version, ProcessDefinition.sha256)
           .join(ProcessDefinition, ProcessDefinition.process_key == Process.key)
           .where(Process.key == bindparam("process_key"), ProcessDefinition.status == "published")
           .order_by(ProcessDefinition.version.desc()).limit(1))


@dataclass(frozen=True, slots=True)
class StartedCase:
    """What the caller of :func:`start_case` learns: the new case's row and the tasks its first run made
    ready (what the API answers with, without reading the case back)."""

    row: InstanceRow
    business_key: str | None
    created: list[NewTask]


def start_process(session: Session, actor: User, process_key: str, values: dict[str, Any],
                  business_key: str | None = None) -> InstanceRow:
    """Start the latest version of ``process_key`` with the start form's ``values``: the new case's row
    (see :func:`start_case`)."""
    return start_case(session, actor, process_key, values, business_key).row


def start_case(session: Session, actor: User, process_key: str, values: dict[str, Any],
               business_key: str | None = None) -> StartedCase:
    """Start the latest version of ``process_key`` with the start form's ``values``.

    :param business_key: the case's key in another system (the API's clients); else the start form's
        ``business_key`` field, when it has one

    :raises NotFound: no such process, or none of its versions is published
    :raises NotAllowed: when none of ``actor``'s roles may start it
    :raises InvalidForm: with per-field messages
    """
    latest = run(session, _LATEST, {"process_key": process_key}).one_or_none()
    if latest is None:
        raise NotFound(f"There is no process “{process_key}”.")
    _check_may_start(actor, latest.title, latest.starter_roles)
    parsed = defs.parsed_by_sha(session, latest.definition_id, latest.sha256, latest.key)
    data = forms.validate(parsed.start_form, values, {}, strict=parsed.start_form_inferred, what="The start form")
    files = attachments.store_form_files(session, actor, data, instance_id=None)
    title = str(data.get("title") or "").strip() or f"{latest.title} by {actor.full_name}"
    started = _launch(session, actor, latest.key, latest.definition_id, latest.version, parsed, data, title,
                      business_key)
    if files:  # the start form's files belong to the case now that it has an id
        attachments.adopt(session, files, started.row.id)
        for attachment in files:
            attachments.record(session, actor, attachment, started.row)
    return started


def role_members(session: Session) -> dict[str, list[str]]:
    """Every role's active members' usernames, sorted (what :data:`ROLE_MEMBERS` holds)."""
    members: dict[str, list[str]] = {}
    for role_key, username in session.execute(
            select(UserRole.role_key, User.username).join(User, User.id == UserRole.user_id)
            .where(User.active.is_(True)).order_by(UserRole.role_key, User.username)):
        members.setdefault(role_key, []).append(username)
    return members


def completed_by(data: dict[str, Any], element_id: str, username: str) -> dict[str, str]:
    """:data:`~engine.inbox.COMPLETED_BY_KEY` of a task's data once ``username`` completed its element
    ``element_id``."""
    before = data.get(COMPLETED_BY_KEY)
    return {**(before if isinstance(before, dict) else {}), element_id: username}


def start_scheduled(session: Session, actor: User, process_key: str, occurrence: datetime) -> InstanceRow:
    """Start a process whose start event is a timer, for the given occurrence (the worker calls this)."""
    process = session.get(Process, process_key)
    if process is None:
        raise NotFound(f"There is no process “{process_key}”.")
    definition = defs.latest_definition(session, process_key)
    parsed = defs.parsed(session, definition)
    data = forms.validate(parsed.start_form, {}, {})
    if ROLE_MEMBERS in definition.xml:  # only a diagram that reads them gets them (they'd show with the case)
        data[ROLE_MEMBERS] = role_members(session)
    return _launch(session, actor, process.key, definition.id, definition.version, parsed, data,
                   f"{process.title} {occurrence:%Y-%m-%d}").row


def _launch(session: Session, actor: User, process_key: str, definition_id: int, version: int,
            parsed: ParsedDefinition, data: dict[str, Any], title: str,
            business_key: str | None = None, message: Any = None,
            received: dict[str, Any] | None = None) -> StartedCase:
    """:param message: the SpiffWorkflow event of the message that starts the case at its message start event
    :param received: then the fields of its ``message_received`` audit event"""
    if parsed.initiator_variable:  # camunda:initiator names the variable that holds the starter
        data[parsed.initiator_variable] = actor.username
    workflow = core.of(session).new_workflow(parsed)
    for start_task in workflow.get_tasks():
        start_task.data.update(data)
    if parsed.start_timer is not None:
        _fire_start_timer(workflow, parsed.start_timer)
    row = InstanceRow(id=None, definition_id=definition_id, process_key=process_key,  # type: ignore[arg-type]
                      title=title[:300], status=InstanceStatus.RUNNING, started_by_id=actor.id, version_id=1,
                      data=data, ended_at=None, next_timer_at=None)
    running = RunningInstance(row, workflow, parsed)
    running.run()
    if message is not None:  # the message start event waits now: give it its message
        workflow.send_event(message)
        running.run()
    if parsed.start_timer is not None:  # the start timer's cycle is spent: let the start event complete
        workflow.refresh_timers()
        running.run()
    started_at = utcnow()
    if not business_key and data.get("business_key"):
        business_key = str(data["business_key"])
    business_key = business_key[:100] if business_key else None
    result = running.insert(session, started_at=started_at, business_key=business_key)
    audit.record(session, EventKind.STARTED, instance=row, actor=actor, version=version, data=data)
    if received is not None:
        audit.record(session, EventKind.MESSAGE_RECEIVED, instance=row, actor=actor, **received)
    record_step(session, running, result)
    return StartedCase(row, business_key, result.created)


def _fire_start_timer(workflow: BpmnWorkflow, start_timer: tuple[str, str, str]) -> None:
    """deptflow schedules timer start events itself (one instance per occurrence); SpiffWorkflow
    would run every past cycle in one instance. So the start event is told it fired once, now."""
    kind, _text, element = start_timer
    past = (utcnow() - timedelta(seconds=1)).replace(tzinfo=UTC).isoformat()
    for task in workflow.get_tasks():
        if getattr(task.task_spec, "bpmn_id", None) == element:
            value: Any = {"cycles": 1, "next": past, "duration": 1.0} if kind == "timeCycle" else past
            task._set_internal_data(event_value=value)


# --- what a step changed: audit events and notifications ------------------------------

_OPEN_TASKS_AT = select(HumanTask.id, HumanTask.name, HumanTask.element_id, HumanTask.assignee_id,
                        HumanTask.candidate_roles).where(HumanTask.instance_id == bindparam("instance_id"),
                                                         HumanTask.element_id == bindparam("element_id"),
                                                         HumanTask.status == TaskStatus.OPEN)


def record_step(session: Session, running: RunningInstance, result: StepResult) -> None:
    """The audit events and notifications of what running a case changed, in the order it happened."""
    row = running.row
    for d in result.decisions:
        audit.record(session, EventKind.GATEWAY_DECISION, instance=row, element_id=d.element_id, name=d.name,
                     flow=d.flow, to=d.to, to_name=d.to_name, condition=d.condition)
    for t in result.timers_fired:
        audit.record(session, EventKind.TIMER_FIRED, instance=row, element_id=t.element_id, name=t.name,
                     attached_to=t.attached_to, interrupting=t.interrupting if t.attached_to else None)
    for task in result.cancelled:
        audit.record(session, EventKind.TASK_CANCELLED, instance=row, task=task)
    for external in result.external_cancelled:
        audit.record(session, EventKind.TASK_CANCELLED, instance=row, element_id=external.element_id,
                     name=external.name, topic=external.topic, external_task_id=external.id)
    for external in result.external_created:
        audit.record(session, EventKind.EXTERNAL_TASK_CREATED, instance=row, element_id=external.element_id,
                     name=external.name, topic=external.topic, external_task_id=external.id)
    escalated = bool(result.timers_fired)
    for task in result.created:
        audit.record(session, EventKind.TASK_CREATED, instance=row, task=task,
                     candidate_roles=task.candidate_roles, assignee_id=task.assignee_id)
        notify.task_created(session, task, row, escalated=escalated)
    if not result.created:  # a non-interrupting deadline on a task that stays open is a reminder
        for timer in result.timers_fired:
            if timer.attached_to and not timer.interrupting:
                for task in run(session, _OPEN_TASKS_AT, {"instance_id": row.id, "element_id": timer.attached_to}):
                    notify.reminder(session, task, row, timer.name)
    if result.incident is not None:
        stop = result.incident
        audit.record(session, EventKind.INCIDENT, instance=row, element_id=stop.element_id, name=stop.name,
                     message=stop.message)
        notify.incident(session, row, stop.name, stop.message)
    if result.ended:
        audit.record(session, EventKind.ENDED, instance=row)
        case_summaries.record_finished(session, row.id, [
            e.element_id or "" for e in audit.pending_events(session)
            if e.instance_id == row.id and e.kind == EventKind.GATEWAY_DECISION])
        notify.request_finished(session, row)
    if result.messages_sent:
        from .messages import deliver_sent  # noqa: PLC0415 - messages builds on the actions of this module

        deliver_sent(session, running, result.messages_sent)


# --- tasks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompletedTask:
    """What the caller of :func:`complete_task` learns: the task, its case, and what became ready."""

    id: int
    name: str
    instance_id: int
    instance_title: str
    created: list[NewTask]
    status: str = TaskStatus.COMPLETED


def _check_open(session: Session, task: TaskRow) -> None:
    if task.status == TaskStatus.COMPLETED:
        raise TaskAlreadyCompleted(task.name, _holder_name(session, task.completed_by_id), task.completed_at)
    if task.status != TaskStatus.OPEN:
        raise TaskNoLongerOpen(f"“{task.name}” is no longer open (it was {task.status}).")
    if task.instance.status != InstanceStatus.RUNNING:
        raise TaskNoLongerOpen(f"The case “{task.instance.title}” is {task.instance.status}; its tasks wait.")


def _holder_name(session: Session, user_id: int | None) -> str:
    """The full name of whoever holds or did a task, for the messages of a lost race."""
    return session.scalar(select(User.full_name).where(User.id == user_id)) or "someone"


def claim(session: Session, actor: User, task_id: int) -> TaskRow:
    """Take an open task of one of ``actor``'s roles; a task someone else holds is refused."""
    task = read_task(session, task_id)
    _check_open(session, task)
    if task.assignee_id == actor.id:
        return task
    check_may_work_on(session, actor, task, task.separated_tasks, task.separated_pairs)
    if not assign_task(session, task, actor.id, utcnow()):
        task = read_task(session, task_id)
        _check_open(session, task)
        raise Conflict(f"“{task.name}” was just claimed by {_holder_name(session, task.assignee_id)}.")
    audit.record(session, EventKind.CLAIMED, instance=task.instance, actor=actor, task=task)
    return task


def unclaim(session: Session, actor: User, task_id: int) -> TaskRow:
    """Give a task back to its roles' shared queue."""
    task = read_task(session, task_id)
    _check_open(session, task)
    if task.assignee_id != actor.id:
        raise NotAllowed(f"“{task.name}” is not assigned to you.")
    if not assign_task(session, task, None, None):
        raise CaseChanged
    audit.record(session, EventKind.UNCLAIMED, instance=task.instance, actor=actor, task=task)
    return task


def delegation_candidates(session: Session, task: Any) -> list[User]:
    """Active users holding one of the task's roles (not the starter, if the task is separated), by name."""
    query = (select(User).join(UserRole, UserRole.user_id == User.id)
             .where(UserRole.role_key.in_(task.candidate_roles), User.active.is_(True))
             .order_by(User.full_name).distinct())
    return [u for u in session.scalars(query)
            if not is_separated(session, u, task) and paired_task_done_by(session, u, task) is None]


@dataclass(frozen=True, slots=True)
class Delegation:
    task: TaskRow
    to: User


def delegate(session: Session, actor: User, task_id: int, to_username: str) -> Delegation:
    """Hand a task to a colleague who holds one of its roles (assignee or administrator only)."""
    task = read_task(session, task_id)
    _check_open(session, task)
    if not may_delegate(session, actor, task):
        raise NotAllowed(f"Only the person working on “{task.name}” (or the manager of its role) may delegate it.")
    target = session.scalar(select(User).where(User.username == to_username.strip(), User.active.is_(True)))
    if (target is None or not is_candidate(target, task) or is_separated(session, target, task, task.separated_tasks)
            or paired_task_done_by(session, target, task) is not None):
        raise InvalidForm({"to": "Choose a colleague who holds the task's role."}, {"to": to_username})
    previous = session.get(User, task.assignee_id) if task.assignee_id is not None else None
    if not assign_task(session, task, target.id, utcnow()):
        raise CaseChanged
    audit.record(session, EventKind.DELEGATED, instance=task.instance, actor=actor, task=task,
                 **{"from": previous.username if previous else None, "to": target.username})
    return Delegation(task, target)


def complete_task(session: Session, actor: User, task_id: int, values: dict[str, Any]) -> CompletedTask:
    """Validate ``values`` against the task's form, complete it and run the process on.

    :raises InvalidForm: per-field errors; nothing is saved
    :raises TaskAlreadyCompleted: someone else completed it first (says who and when)
    :raises NotAllowed: the task belongs to another role or person
    :raises CaseChanged: the case changed since it was read (run again through :func:`engine.rows.retrying`)
    """
    task = read_task(session, task_id, with_state=True)
    _check_open(session, task)
    check_may_work_on(session, actor, task, task.separated_tasks, task.separated_pairs)
    instance = task.instance
    definition = defs.parsed_by_sha(session, instance.definition_id, task.sha256, instance.process_key,
                                    core.bound_calls(task.state))
    running = RunningInstance.load(session, instance, task.state or "", definition)
    spiff_task = running.workflow.get_task_from_id(UUID(task.spiff_task_id))
    if spiff_task.state != TaskState.READY:
        raise CaseChanged  # the case moved on after the task row was read
    open_before = {str(t.id) for t in ready_user_tasks(running.workflow)} - {task.spiff_task_id}
    info = definition.user_tasks.get(task.element_id)
    submitted = forms.validate(info.form if info else forms.Form(), values, spiff_task.data,
                               strict=bool(info and info.inferred_form))
    for attachment in attachments.store_form_files(session, actor, submitted, instance_id=instance.id,
                                                   task_id=task.id):
        attachments.record(session, actor, attachment, instance, task)
    spiff_task.data[COMPLETED_BY_KEY] = completed_by(spiff_task.data, task.element_id, actor.username)
    # the guarded write of the case comes first: a stale case writes nothing
    result, changes = running.complete(session, spiff_task, submitted, open_before)
    if not close_task(session, task, actor.id, utcnow(), submitted):
        raise CaseChanged  # completed or cancelled meanwhile: the next run reports by whom
    close(session, [task.id])
    audit.record(session, EventKind.COMPLETED, instance=instance, actor=actor, task=task, values=submitted,
                 changes=changes)
    record_step(session, running, result)
    return CompletedTask(task.id, task.name, instance.id, instance.title, result.created)


# --- a manager's reassignment and follow-up dates ---------------------------------------

#: the most tasks one reassignment takes (a page of the inbox holds 50)
MAX_REASSIGN = 200
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Reassignment:
    """What became of one task of a bulk reassignment: ``error`` says why it was left as it was."""

    task_id: int
    name: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def reassign(session: Session, actor: User, task_ids: list[int], to_username: str | None,
             reason: str) -> list[Reassignment]:
    """A manager hands several open tasks of their team's roles to one person (``to_username``), or back to
    the roles' queue (``None``), with a reason that goes on each task's audit event.

    Per task, not all-or-nothing: each task is checked by the rules of :func:`delegate` (and of
    :func:`unclaim` for the queue) and either reassigned or reported with the reason it was not (taken by
    someone meanwhile, completed, another team's, a person who may not do it). A refusal writes nothing
    for that task, so the others need no savepoint; one late task must not undo a manager's forty others.

    :raises NotAllowed: ``actor`` manages no role (and is no administrator)
    :raises InvalidForm: no task chosen, too many, no reason, or an unknown person
    """
    if not (managed_roles(session, actor) or can(actor, Permission.ADMINISTER)):
        raise NotAllowed("Only the manager of a role reassigns its tasks.")
    reason = " ".join((reason or "").split())
    ids = list(dict.fromkeys(task_ids))
    errors = {}
    if not ids:
        errors["tasks"] = "Choose at least one task."
    elif len(ids) > MAX_REASSIGN:
        errors["tasks"] = f"Choose at most {MAX_REASSIGN} tasks at once."
    if not reason:
        errors["reason"] = "Say why the tasks change hands (it is kept in each case's history)."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"Enter at most {MAX_REASON} characters."
    target = None
    if to_username:
        target = session.scalar(select(User).where(User.username == to_username.strip(), User.active.is_(True)))
        if target is None:
            errors["to"] = "There is no such active person."
    if errors:
        raise InvalidForm(errors, {"to": to_username or "", "reason": reason})
    return [_reassign_one(session, actor, task_id, target, reason) for task_id in ids]


def _reassign_one(session: Session, actor: User, task_id: int, target: User | None, reason: str) -> Reassignment:
    try:
        task = read_task(session, task_id)
    except NotFound:
        return Reassignment(task_id, f"Task {task_id}", "There is no such task.")
    try:
        _check_open(session, task)
    except (TaskAlreadyCompleted, TaskNoLongerOpen) as exc:
        return Reassignment(task.id, task.name, str(exc))
    if not (manages(session, actor, task) or can(actor, Permission.ADMINISTER)):
        return Reassignment(task.id, task.name, "It is not a task of a role you manage.")
    if target is not None and target.id == task.assignee_id or target is None and task.assignee_id is None:
        holder = target.full_name if target else "the queue of its role"
        return Reassignment(task.id, task.name, f"It is already with {holder}.")
    if target is not None and (not is_candidate(target, task) or is_separated(session, target, task,
                                                                              task.separated_tasks)
                               or paired_task_done_by(session, target, task, task.separated_pairs) is not None):
        return Reassignment(task.id, task.name, f"{target.full_name} may not do it (another role, or separation "
                                                "of duties).")
    previous_username = session.scalar(select(User.username).where(User.id == task.assignee_id))
    if not assign_task(session, task, target.id if target else None, utcnow() if target else None):
        return Reassignment(task.id, task.name, "It changed hands meanwhile; reload and try again.")
    if target is not None:
        audit.record(session, EventKind.DELEGATED, instance=task.instance, actor=actor, task=task, reason=reason,
                     **{"from": previous_username, "to": target.username})
    else:
        audit.record(session, EventKind.UNCLAIMED, instance=task.instance, actor=actor, task=task, reason=reason,
                     **{"from": previous_username})
    return Reassignment(task.id, task.name)


def set_follow_up(session: Session, actor: User, task_id: int, day: date | None) -> TaskRow:
    """The assignee's follow-up date (Camunda's followUp): the task leaves their tasks until that day and
    waits under "Follow-up"; ``None`` brings it back now."""
    task = read_task(session, task_id)
    _check_open(session, task)
    if task.assignee_id != actor.id:
        raise NotAllowed(f"“{task.name}” is not assigned to you.")
    when = None
    if day is not None:
        if day <= utcnow().date():
            raise InvalidForm({"follow_up": "Choose a day after today."}, {"follow_up": day.isoformat()})
        when = datetime(day.year, day.month, day.day)
    run(session, _FOLLOW_UP, {"task_id": task.id, "follow_up_at": when})
    audit.record(session, EventKind.FOLLOW_UP_SET, instance=task.instance, actor=actor, task=task,
                 follow_up=day.isoformat() if day else None)
    return task


_FOLLOW_UP = (update(HumanTask.__table__).where(HumanTask.__table__.c.id == bindparam("task_id"))
              .values(follow_up_at=bindparam("follow_up_at")))
