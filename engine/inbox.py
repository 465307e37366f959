"""The inbox: ``human_tasks`` rows kept in step with each workflow (the projection), and the
queries of a person's inbox.

Inbox queries read only these rows (indexed by status, role, assignee and due date),
never the serialized workflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import MultiInstanceTask
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from . import core, juel, sandbox
from .access import resolve_assignee, user_id_of
from .clock import utcnow
from .db import HumanTask, Process, ProcessDefinition, ProcessInstance, TaskCandidate, User
from .definitions import ParsedDefinition, UserTaskInfo, due_at, known_roles, list_entries, mapped_role
from .expressions import literal_or_expression
from .sql import run
from .vocabulary import TaskStatus


@dataclass(frozen=True, slots=True)
class InboxRow:
    """What one inbox line shows: read as plain columns, no ORM objects (the inbox is the busiest page)."""

    id: int
    instance_id: int
    element_id: str
    name: str
    candidate_roles: list[str]
    due_at: datetime | None
    priority: int
    assignee_id: int | None
    case_title: str
    process_name: str


#: Rows per inbox section and page, as a task list shows them (Camunda's Tasklist pages by 50 too)
PAGE_SIZE = 50


@dataclass
class Inbox:
    """One page of each inbox section, with the section's total and page number."""

    assigned: list[InboxRow]
    available: list[InboxRow]
    assigned_total: int = 0
    available_total: int = 0
    assigned_page: int = 1
    available_page: int = 1
    page_size: int = PAGE_SIZE

    @property
    def count(self) -> int:
        return self.assigned_total + self.available_total


def ready_user_tasks(workflow: BpmnWorkflow) -> list:
    return workflow.get_tasks(state=TaskState.READY, manual=True)


@dataclass(slots=True)
class NewTask:
    """A task row a step just created (written with one INSERT; notices and events read it)."""

    id: int
    instance_id: int
    element_id: str
    name: str
    candidate_roles: list[str]
    assignee_id: int | None


@dataclass(frozen=True, slots=True)
class ClosedTask:
    """An open task row a step took away (an interrupting deadline, a cancelled branch)."""

    id: int
    name: str
    element_id: str


_OPEN_SPIFF_IDS = select(HumanTask.spiff_task_id).where(HumanTask.instance_id == bindparam("instance_id"),
                                                        HumanTask.status == TaskStatus.OPEN)
_INSERT_TASKS = insert(HumanTask.__table__).returning(HumanTask.__table__.c.id, sort_by_parameter_order=True)
_INSERT_CANDIDATES = insert(TaskCandidate.__table__)
_CLOSE = delete(TaskCandidate.__table__).where(TaskCandidate.__table__.c.task_id.in_(bindparam("ids", expanding=True)))


def sync(session: Session, instance: Any, workflow: BpmnWorkflow, definition: ParsedDefinition,
         open_before: set[str] | None = None) -> tuple[list[NewTask], list[ClosedTask]]:
    """Create rows for newly ready user tasks; cancel open rows whose task went away.

    ``open_before``: the SpiffWorkflow ids of the instance's open rows, when the caller knows
    them (the ready user tasks of the state it loaded, less the one it completed); else they are read.

    :returns: the rows created and the rows cancelled
    """
    if open_before is None:
        open_before = set(run(session, _OPEN_SPIFF_IDS, {"instance_id": instance.id}).scalars())
    ready = {str(task.id): task for task in ready_user_tasks(workflow)}
    cancelled = _cancel(session, instance, open_before - ready.keys())
    now = utcnow()
    defaults = _Defaults(session, instance.process_key)
    rows = [_new_row(session, instance, task, definition, now, defaults)
            for key, task in ready.items() if key not in open_before]
    if not rows:
        return [], cancelled
    ids = run(session, _INSERT_TASKS, rows).scalars().all()
    created = [NewTask(task_id, instance.id, row["element_id"], row["name"], row["candidate_roles"],
                       row["assignee_id"]) for task_id, row in zip(ids, rows, strict=True)]
    set_candidates(session, created, new=True)
    return created, cancelled


class _Defaults:
    """The process's default due time and priority, read only when a new task lacks one of them."""

    def __init__(self, session: Session, process_key: str):
        self._session, self._key, self._values = session, process_key, None

    def get(self) -> tuple[str | None, int | None]:
        if self._values is None:
            row = run(self._session, _DEFAULTS, {"key": self._key}).first()
            self._values = (row[0], row[1]) if row else (None, None)
        return self._values


_DEFAULTS = select(Process.default_due, Process.default_priority).where(Process.key == bindparam("key"))


#: What a case a timer start event started knows of the department, when its diagram reads it: role key →
#: the usernames of its active members, as at the start (a script task can't query the database;
#: ``sales_diary`` gives every sales representative their own diary task from it)
ROLE_MEMBERS = "deptflow_role_members"
#: Who completed each user task of the case: element id → username of the last person who completed it. The
#: JUEL attributes of user tasks read it by this name (a send-back goes to the person who filed:
#: ``camunda:assignee="${deptflow_completed_by.file_x}"``); the case keeps it as private data
#: (:data:`COMPLETED_BY_KEY`): out of the case's data view, beyond the reach of forms, messages and workers
COMPLETED_BY = "deptflow_completed_by"
COMPLETED_BY_KEY = "_deptflow_completed_by"

#: Where a ready task keeps what its JUEL attributes gave (saved with the workflow, so a retry resolves again
#: only a task that failed): candidate roles, assignee, due date, priority
RESOLVED = "deptflow_resolved"
#: ``${starter}`` / ``${initiator}``: the person who started the case (deptflow's own names, not JUEL variables)
_STARTER = ("${starter}", "${initiator}")


def _dynamic(info: UserTaskInfo) -> bool:
    assignee = juel.is_expression(info.assignee) and info.assignee not in _STARTER
    return bool(info.dynamic_groups or info.priority_expression or juel.is_expression(info.due) or assignee)


def resolve_dynamic(session: Session, workflow: BpmnWorkflow, definition: ParsedDefinition) -> list[tuple[Any, str]]:
    """Evaluate the JUEL ``camunda:candidateGroups``, ``assignee``, ``dueDate`` and ``priority`` of the user tasks
    that just became ready, over their data, and keep the results with the task (:data:`RESOLVED`).

    A group becomes a role by its key or through a group mapping, as at deploy; one that maps to no role, an
    expression that fails, or a due date or priority of the wrong kind is returned as (task, message): the
    caller stops the case as an incident, so the task never waits for nobody.
    """
    failures: list[tuple[Any, str]] = []
    if not any(_dynamic(info) for info in definition.user_tasks.values()):
        return failures  # the common case: nothing to evaluate, no walk of the task tree
    roles = None
    for task in ready_user_tasks(workflow):
        info = definition.user_tasks.get(task.task_spec.bpmn_id)
        if info is None or RESOLVED in task.internal_data or not _dynamic(info):
            continue
        if roles is None and info.dynamic_groups:
            roles = core.of(session).definitions.current_roles(session.get_bind(), lambda: known_roles(session))
        try:
            task.internal_data[RESOLVED] = _resolve(info, task.data, roles or {})
        except juel.JuelError as exc:
            failures.append((task, str(exc)))
    return failures


def _resolve(info: UserTaskInfo, data: dict[str, Any], roles: dict[str, str]) -> dict[str, Any]:
    data = {**data, COMPLETED_BY: data.get(COMPLETED_BY_KEY) or {}}  # before any completion: ``${….x}`` is null
    resolved: dict[str, Any] = {}
    if info.dynamic_groups:
        found = list(info.candidate_roles)
        for expression in info.dynamic_groups:
            for group in _groups(juel.evaluate(expression, data), expression):
                role = group if group in roles else mapped_role(group, roles)
                if role is None:
                    raise juel.JuelError(f"candidate group “{group}” (from {expression}) is neither a role nor mapped "
                                         "to one: map it to a role on the Groups page, then retry the case")
                found.append(role)
        if not found and not info.assignee:
            raise juel.JuelError(f"candidate groups {', '.join(info.dynamic_groups)} name no group: nobody could do "
                                 "the task")
        resolved["roles"] = list(dict.fromkeys(found))
    if juel.is_expression(info.assignee) and info.assignee not in _STARTER:
        value = juel.evaluate(info.assignee or "", data)
        if value is not None and not isinstance(value, str):
            raise juel.JuelError(f"camunda:assignee {info.assignee} gave {juel.describe(value)}, not a username")
        resolved["assignee"] = value.strip() if value else None
    if juel.is_expression(info.due):
        resolved["due"] = _moment(juel.evaluate(info.due or "", data), info.due or "")
    if info.priority_expression:
        value = juel.evaluate(info.priority_expression, data)
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
            number = int(value)
        if number is None:
            raise juel.JuelError(f"camunda:priority {info.priority_expression} gave {juel.describe(value)}, "
                                 "not a whole number")
        resolved["priority"] = number
    return resolved


def _groups(value: Any, expression: str) -> list[str]:
    """Group names from what a candidate groups expression gave: a comma list or a list of names."""
    if value is None:
        return []
    if isinstance(value, str):
        return list_entries(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise juel.JuelError(f"camunda:candidateGroups {expression} gave {juel.describe(value)}, not group names")


def _moment(value: Any, expression: str) -> str | None:
    """A due date from an expression's value: a date, a date-time, or ISO 8601 text (a date or a duration)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and due_at(value, utcnow()) is not None:
        return due_at(value, utcnow()).isoformat()  # type: ignore[union-attr]
    raise juel.JuelError(f"camunda:dueDate {expression} gave {juel.describe(value)}, not a date")


def _new_row(session: Session, instance: Any, task: Any, definition: ParsedDefinition, now: datetime,
             defaults: _Defaults) -> dict:
    """The inbox row of a newly ready task; the process's defaults fill a due time or priority the diagram
    does not set. JUEL attributes were evaluated by :func:`resolve_dynamic` before the step was saved."""
    element_id = task.task_spec.bpmn_id
    info = definition.user_tasks.get(element_id)
    resolved = task.internal_data.get(RESOLVED, {})
    if "assignee" in resolved:
        assignee_id = user_id_of(session, resolved["assignee"]) if resolved["assignee"] else None
    else:
        assignee_id = resolve_assignee(session, info.assignee, instance) if info else None
    due = resolved.get("due", info.due if info else None)
    priority = resolved.get("priority", info.priority if info else None)
    if due is None or priority is None:
        default_due, default_priority = defaults.get()
        due = due or default_due
        priority = priority if priority is not None else default_priority
    return {
        "instance_id": instance.id, "process_key": instance.process_key, "spiff_task_id": str(task.id),
        "element_id": element_id,
        "name": task_title(task, info), "created_at": now, "status": TaskStatus.OPEN,
        "priority": priority if priority is not None else 50,
        "due_at": _due(due, task.data, now),
        "assignee_id": assignee_id, "claimed_at": now if assignee_id is not None else None,
        "candidate_roles": list(resolved.get("roles", info.candidate_roles if info else [])),
    }


def task_title(task: Any, info: UserTaskInfo | None) -> str:
    """How the inbox names a task: its BPMN name; one instance of a multi-instance task over a collection adds
    its element (“Review: ann”; a loop over a cardinality does not: its element is a number), a task of a
    process another file publishes names that process and its version."""
    name = task.task_spec.bpmn_name or task.task_spec.bpmn_id
    element = _loop_element(task)
    if element is not None and element in task.data:
        name = f"{name}: {task.data[element]}"
    if info is not None and info.called:
        name = f"{name} ({info.called})"
    return name[:200]


def _loop_element(task: Any) -> str | None:
    """The element variable of the multi-instance over a collection ``task`` is an instance of, or sits in
    (a task of a multi-instance sub-process: *Register and file the sales diary: steve*)."""
    for _depth in range(8):  # sub-processes nest; deptflow limits their depth well below this
        loop = getattr(task.parent, "task_spec", None)
        element = getattr(getattr(loop, "input_item", None), "bpmn_id", None)
        if isinstance(loop, MultiInstanceTask) and loop.data_input is not None and element:
            return element
        workflow = task.workflow
        if workflow.parent_task_id is None:
            return None
        task = workflow.top_workflow.get_task_from_id(workflow.parent_task_id)
        if task is None:
            return None
    return None


def _cancel(session: Session, instance: Any, spiff_ids: set[str]) -> list[ClosedTask]:
    """Open rows whose task the step took away (an interrupting deadline, a cancelled branch)."""
    if not spiff_ids:
        return []
    cancelled = [ClosedTask(*row) for row in session.execute(
        update(HumanTask)
        .where(HumanTask.instance_id == instance.id, HumanTask.spiff_task_id.in_(spiff_ids),
               HumanTask.status == TaskStatus.OPEN)
        .values(status=TaskStatus.CANCELLED)
        .returning(HumanTask.id, HumanTask.name, HumanTask.element_id)
    )]
    close(session, [row.id for row in cancelled])
    return cancelled


def set_candidates(session: Session, rows: list[Any], *, new: bool = False) -> None:
    """(Re)write the role lookup rows of open tasks from their ``candidate_roles``."""
    if not rows:
        return
    if not new:
        close(session, [row.id for row in rows])
    values = [{"task_id": row.id, "role_key": role} for row in rows for role in row.candidate_roles]
    if values:
        run(session, _INSERT_CANDIDATES, values)


def close(session: Session, task_ids: list[int]) -> None:
    """Tasks that left the open state leave the role lookup (their roles stay in ``candidate_roles``)."""
    if task_ids:
        run(session, _CLOSE, {"ids": task_ids})


def _due(expression: str | None, data: dict, now: datetime) -> datetime | None:
    """``camunda:dueDate``: an ISO 8601 duration or date-time, or ``${expression}`` on the process data."""
    if not expression:
        return None
    is_literal, text = literal_or_expression(expression)
    if not is_literal:
        try:
            text = str(sandbox.evaluate(text, data))
        except Exception:  # noqa: BLE001 - a bad expression leaves the task undated, it must not block the case
            return None
    return due_at(text, now)


_INBOX_COLUMNS = (HumanTask.id, HumanTask.instance_id, HumanTask.element_id, HumanTask.name,
                  HumanTask.candidate_roles, HumanTask.due_at, HumanTask.priority, HumanTask.assignee_id,
                  ProcessInstance.title, ProcessDefinition.name)


#: Earliest due first (undated last), then highest priority.
_INBOX_ORDER = (HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.priority.desc(), HumanTask.id)


def inbox_queries(actor: User) -> tuple[Select, Select | None]:
    """The ids of the tasks assigned to ``actor`` (less those waiting for their follow-up date), and of the
    unclaimed tasks of ``actor``'s roles."""
    open_tasks = select(HumanTask.id).where(HumanTask.status == TaskStatus.OPEN)
    assigned = open_tasks.where(HumanTask.assignee_id == actor.id,
                                or_(HumanTask.follow_up_at.is_(None), HumanTask.follow_up_at <= utcnow()))
    roles = sorted(actor.role_keys)
    if not roles:
        return assigned, None
    for_my_roles = select(TaskCandidate.task_id).where(TaskCandidate.role_key.in_(roles))
    return assigned, open_tasks.where(HumanTask.assignee_id.is_(None), HumanTask.id.in_(for_my_roles))


def page_query(tasks: Select, limit: int, offset: int = 0) -> Select:
    """One page of ``tasks`` (ids) with what an inbox row shows and the number of tasks in all.

    The page is cut before the joins: a role's queue may hold a thousand tasks, and only the
    rows shown need their case and process. The total comes with the rows (``count(*) OVER ()``):
    the database reads every matching row to sort them anyway.
    """
    page = tasks.add_columns(func.count().over().label("total")).order_by(*_INBOX_ORDER)
    page = page.limit(limit).offset(offset).subquery()
    return (select(*_INBOX_COLUMNS, page.c.total)
            .join(page, page.c.id == HumanTask.id)
            .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id)
            .order_by(*_INBOX_ORDER))


def inbox(session: Session, actor: User, *, assigned_page: int = 1, available_page: int = 1,
          page_size: int = PAGE_SIZE) -> Inbox:
    """A page of the tasks assigned to ``actor`` and of the unclaimed tasks open for ``actor``'s roles."""
    assigned, available = inbox_queries(actor)
    mine, mine_total, mine_page = _page(session, assigned, assigned_page, page_size)
    queue, queue_total, queue_page = _page(session, available, available_page, page_size)
    return Inbox(assigned=mine, available=queue, assigned_total=mine_total, available_total=queue_total,
                 assigned_page=mine_page, available_page=queue_page, page_size=page_size)


def _page(session: Session, tasks: Select | None, page: int, page_size: int) -> tuple[list[InboxRow], int, int]:
    """(rows, total, page) of one inbox section; a page past the end shows the last one."""
    if tasks is None:
        return [], 0, 1
    page = max(1, page)
    rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size)).all()
    if not rows and page > 1:  # past the end: the total, then the last page
        total = session.scalar(select(func.count()).select_from(tasks.subquery())) or 0
        page = max(1, -(-total // page_size))
        rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size)).all()
    total = rows[0][-1] if rows else 0
    return [InboxRow(*row[:-1]) for row in rows], total, page


def open_tasks_of(session: Session, instance_ids: list[int]) -> dict[int, list[HumanTask]]:
    result: dict[int, list[HumanTask]] = {i: [] for i in instance_ids}
    if instance_ids:
        query = select(HumanTask).where(HumanTask.instance_id.in_(instance_ids), HumanTask.status == TaskStatus.OPEN)
        for row in session.scalars(query.order_by(HumanTask.id)):
            result[row.instance_id].append(row)
    return result
