"""What the task page, the case page and "my requests" show: plain reads, no workflow runs.

Every read asks :mod:`engine.access` whether ``actor`` may see what it reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, comments, forms
from . import definitions as defs
from .access import (
    allowed_case_actions,
    is_candidate,
    is_separated,
    manages,
    may_delegate,
    may_view_case,
    may_view_task,
    paired_task_done_by,
)
from .actions import delegation_candidates, startable
from .db import Event, HumanTask, MessageSubscription, ProcessInstance, User
from .definitions import ParsedDefinition, UserTaskInfo
from .errors import NotAllowed, NotFound
from .inbox import open_tasks_of
from .vocabulary import EventKind, InstanceStatus, TaskStatus


def field_labels(parsed: ParsedDefinition) -> dict[str, str]:
    """Process variable → the label of the first form field that sets it."""
    labels: dict[str, str] = {}
    if parsed.initiator_variable:
        labels[parsed.initiator_variable] = "Started by"
    for f in _all_fields(parsed):
        labels.setdefault(f.id, f.label)
    return labels


def field_choices(parsed: ParsedDefinition, instance: ProcessInstance | None = None) -> dict[str, dict[str, str]]:
    """Enum variable → option id → option name, to show "Product quality" rather than "quality".

    :param instance: the case shown; its starter variable (which holds a username) then shows the person's name
    """
    choices: dict[str, dict[str, str]] = {}
    for f in _all_fields(parsed):
        if f.options:
            choices.setdefault(f.id, {}).update(dict(f.options))
    starter = instance.started_by if instance is not None else None
    if parsed.initiator_variable and starter is not None:
        choices.setdefault(parsed.initiator_variable, {})[starter.username] = starter.full_name
    return choices


def _all_fields(parsed: ParsedDefinition) -> list[forms.FormField]:
    fields = list(parsed.start_form.fields)
    for info in parsed.user_tasks.values():
        fields.extend(info.form.fields)
    return fields


# --- the start form ---------------------------------------------------------------------


@dataclass
class StartForm:
    process: Any
    definition: Any
    form: forms.Form
    documentation: str
    values: dict[str, Any]


def start_form(session: Session, actor: User, process_key: str) -> StartForm:
    process = startable(session, actor, process_key)
    definition = defs.latest_definition(session, process_key)
    parsed = defs.parsed(session, definition)
    values = forms.initial_values(parsed.start_form, {})
    return StartForm(process, definition, parsed.start_form, parsed.start_documentation, values)


# --- the task page ----------------------------------------------------------------------


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
    #: the case's comments and files (empty for a reader who may not see the case)
    discussion: comments.Discussion | None = None

    @property
    def form(self) -> forms.Form:
        return self.info.form if self.info else forms.Form()


def task_view(session: Session, actor: User, task_id: int) -> TaskView:
    task = session.get(HumanTask, task_id, populate_existing=True)
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    if not (may_view_task(actor, task) or manages(session, actor, task)):
        raise NotAllowed("This task belongs to another role.")
    instance = task.instance
    parsed = defs.parsed_for_case(session, instance.definition, lambda: instance.state)
    info = parsed.user_tasks.get(task.element_id)
    data = dict(instance.data or {})
    if task.status == TaskStatus.COMPLETED and task.submitted:
        data.update(task.submitted)
    values = forms.initial_values(info.form, data) if info else {}
    is_open = task.status == TaskStatus.OPEN
    separated = is_separated(session, actor, task) or (
        is_open and paired_task_done_by(session, actor, task) is not None)
    may_act = not separated and (
        task.assignee_id == actor.id or (task.assignee_id is None and is_candidate(actor, task)))
    holds_it = is_open and task.assignee_id == actor.id
    return TaskView(
        task=task,
        instance=instance,
        info=info,
        data=data,
        values=values,
        labels=field_labels(parsed),
        choices=field_choices(parsed, instance),
        can_complete=is_open and may_act,
        can_claim=is_open and not separated and task.assignee_id is None and is_candidate(actor, task),
        can_unclaim=holds_it,
        delegates=[u for u in delegation_candidates(session, task) if u.id != actor.id]
        if is_open and may_delegate(session, actor, task) else [],
        separated=separated,
        discussion=comments.discussion(session, actor, instance.id),
    )


# --- my requests and the case page ------------------------------------------------------


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
    open_by_instance = open_tasks_of(session, [i.id for i in instances])
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
    #: what ``actor`` may do to the case now: cancel, suspend, resume, retry
    actions: set[str] = field(default_factory=set)
    #: why the case stopped, while it is an incident (the latest ``incident`` event)
    incident: Event | None = None
    #: the case's comments and files
    discussion: comments.Discussion | None = None
    #: the message catches the case waits at: (step name, message name), by step
    waiting_messages: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class VisibleCase:
    """A case with its tasks and events, read once for a page that ``actor`` may see."""

    instance: ProcessInstance
    tasks: list[HumanTask]
    events: list[Event]
    parsed: ParsedDefinition


def visible_case(session: Session, actor: User, instance_id: int) -> VisibleCase:
    """The case, its tasks and its events, if ``actor`` may see them (the case page and the history).

    :raises NotFound: no such case
    :raises NotAllowed: ``actor`` took no part in it and may not read every case
    """
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)
                                 .order_by(HumanTask.id)))
    events = audit.events_of(session, instance_id)
    if not may_view_case(actor, instance, tasks, events):
        raise NotAllowed("You took no part in this case.")
    return VisibleCase(instance, tasks, events,
                       defs.parsed_for_case(session, instance.definition, lambda: instance.state))


def instance_detail(session: Session, actor: User, instance_id: int) -> InstanceDetail:
    """Data, tasks and event log of one instance, for its participants and readers of every case."""
    case = visible_case(session, actor, instance_id)
    return InstanceDetail(
        instance=case.instance,
        events=case.events,
        tasks=case.tasks,
        labels=field_labels(case.parsed),
        choices=field_choices(case.parsed, case.instance),
        definition_name=case.parsed.name,
        open_tasks=[t for t in case.tasks if t.status == TaskStatus.OPEN],
        viewable_task_ids={t.id for t in case.tasks if may_view_task(actor, t)},
        actions=allowed_case_actions(session, actor, case.instance),
        incident=next((e for e in reversed(case.events) if e.kind == EventKind.INCIDENT), None)
        if case.instance.status == InstanceStatus.INCIDENT else None,
        discussion=comments.discussion(session, actor, instance_id, visible=True),
        waiting_messages=_waiting_messages(session, case.instance, case.parsed),
    )


def _waiting_messages(session: Session, instance: ProcessInstance, parsed: ParsedDefinition) -> list[tuple[str, str]]:
    """What the case's message catches wait for (a process without message catches reads nothing)."""
    if not parsed.message_catches or instance.status not in InstanceStatus.open():
        return []
    found = session.execute(select(MessageSubscription.element_id, MessageSubscription.message_name)
                            .where(MessageSubscription.instance_id == instance.id)
                            .order_by(MessageSubscription.element_id, MessageSubscription.message_name))
    return [(parsed.step_name(element), message) for element, message in found]
