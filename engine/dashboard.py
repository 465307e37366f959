"""The department's figures (the KPI dashboard): added up from the cases, the task projection and the event log;
no workflow is ever deserialized. Each figure lists its items (:data:`FIGURES`: one row per case, task or decision,
with its group, counts and value); the days and months that are over are added up once and kept
(:mod:`engine.rollups`), so a request reads those sums and only today's items. The finished cases' figures read
their summary rows (:mod:`engine.case_summaries`, one narrow row per case written when it ends).

Definitions (the numbers the page shows and the tests compute by hand):

* **started / finished per week**: cases whose ``started_at`` / ``ended_at`` (status ``completed``) falls in the
  range, by the Monday (UTC) of their week. Cancelled cases are not finished.
* **cycle time**: ``ended_at − started_at`` of the cases finished in the range; median and 90th percentile as
  ``percentile_cont`` computes them (linear interpolation between the two nearest ranks), over every value.
* **rework rate**: share of the finished cases that went round a loop — a review sent the work back (a
  rectification, an amendment): some user task of the case was completed more than once, or some exclusive
  gateway decided more than once (a re-check comes back to the same decision).
* **on time**: share of the finished cases none of whose tasks was completed after its due date (tasks without
  a due date count as on time).
* **work in progress**: open tasks per step now.
* **waiting time** of a step: ``completed_at − created_at`` of its tasks completed in the range (how long the
  case waited at it); the diagram colours each task by its median.
* **path frequency**: a flow out of an exclusive gateway counts the ``gateway_decision`` events that took it;
  the page derives the other flows from their source (a task's completions, a start event's cases started).
* **overdue / due soon**: open tasks past their due date / due within :data:`engine.notify.DUE_SOON`.
* **handling time** of a completed task: from its claim to its completion, or from when it became ready when
  the person completed it without claiming it first (then ``claimed_at`` equals ``completed_at``).
* per employee and month: tasks completed, median handling time, and how many of them were completed late.

Who sees what (roles as data): holders of ``statistics`` or ``audit`` see everything; a process's owner role
sees that process's figures; holders of a managing role see the per-employee figures of the members of the
roles they manage (their team) and the overdue work of those roles; everyone sees their own figures.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from . import definitions as defs
from .access import managed_roles
from .clock import utcnow
from .db import CaseSummary, Event, HumanTask, Process, ProcessInstance, Role, TaskCandidate, User, UserRole
from .errors import InvalidForm, NotAllowed, NotFound
from .history import csv_cell
from .notify import DUE_SOON
from .permissions import can
from .rollups import Figure, Group, collect, merge_group, process_in, seal
from .vocabulary import EventKind, InstanceStatus, Permission, TaskStatus

#: the longest range one request aggregates (a year and a bit: a year's months side by side)
MAX_DAYS = 400
DEFAULT_DAYS = 91


# --- filters and scope ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the page asks for: a date range (both days included), optionally one process and one role."""

    start: date
    end: date
    process: str | None = None
    role: str | None = None

    @property
    def since(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day)

    @property
    def until(self) -> datetime:
        """The first moment after the range."""
        return datetime(self.end.year, self.end.month, self.end.day) + timedelta(days=1)


def parse_filters(args: dict[str, str], today: date | None = None) -> Filters:
    """The filters from a query string; an empty field takes its default (the last 13 weeks).

    :raises InvalidForm: a date that is not YYYY-MM-DD, a range that ends before it starts or spans more
        than :data:`MAX_DAYS` days
    """
    today = today or utcnow().date()
    errors: dict[str, str] = {}
    values = {name: (args.get(name) or "").strip() for name in ("start", "end", "process", "role")}

    def day(name: str, default: date) -> date:
        if not values[name]:
            return default
        try:
            return date.fromisoformat(values[name])
        except ValueError:
            errors[name] = "Give the date as YYYY-MM-DD."
            return default

    end = day("end", today)
    start = day("start", end - timedelta(days=DEFAULT_DAYS - 1))
    if not errors and start > end:
        errors["end"] = "The range ends before it starts."
    elif not errors and (end - start).days >= MAX_DAYS:
        errors["start"] = f"Choose at most {MAX_DAYS} days."
    if errors:
        raise InvalidForm(errors, values)
    return Filters(start, end, values["process"] or None, values["role"] or None)


@dataclass(frozen=True)
class Scope:
    """What one person may see. ``None``: everything of that kind."""

    processes: frozenset[str] | None
    people: frozenset[int] | None
    #: roles whose open tasks the person oversees (managing role); ``None``: all
    roles: frozenset[str] | None
    user_id: int

    @property
    def everything(self) -> bool:
        return self.processes is None

    @property
    def sees_processes(self) -> bool:
        return self.processes is None or bool(self.processes)


def scope_of(session: Session, actor: User) -> Scope:
    """The figures ``actor`` may read, from the roles' data (see the module's docstring)."""
    if can(actor, Permission.STATISTICS) or can(actor, Permission.AUDIT):
        return Scope(None, None, None, actor.id)
    owned = frozenset(session.scalars(select(Process.key).where(Process.owner_role.in_(actor.role_keys)))) \
        if actor.role_keys else frozenset()
    team_roles = frozenset(managed_roles(session, actor))
    people = {actor.id}
    if team_roles:
        people.update(session.scalars(select(UserRole.user_id).where(UserRole.role_key.in_(team_roles))))
    return Scope(owned, frozenset(people), team_roles, actor.id)


def may_see_dashboard(session: Session, actor: User) -> bool:
    """Whether the dashboard shows ``actor`` more than their own figures (its link is in their navigation)."""
    scope = scope_of(session, actor)
    return scope.everything or bool(scope.processes) or bool(scope.roles)


# --- the items each figure adds up (engine.rollups) -------------------------------------------------------

_ENDED = (InstanceStatus.COMPLETED.value, InstanceStatus.CANCELLED.value)
#: the dealer audit's checklist (boolean fields of its inspection form)
CHECKLIST = {"decoration_ok": "Store decoration", "price_discipline_ok": "Price discipline",
             "no_cross_region_selling": "No cross-region selling", "display_ok": "Product display"}
DRAWINGS, AUDITS, COMPLAINTS, PLANS = ("engineering_drawing_application", "dealer_audit", "customer_complaint",
                                       "marketing_plan_approval")


def _between(column: Any, since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    return [column >= since, column < until]


def _completed_between(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    """Tasks completed in the range (``ix_tasks_status_completed``)."""
    return [HumanTask.status == TaskStatus.COMPLETED, *_between(HumanTask.completed_at, since, until)]


def _started_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    i = ProcessInstance
    return select(i.started_at, true(), i.process_key, literal(1)).where(
        *_between(i.started_at, since, until), *process_in(i.process_key, processes))


def _finished_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    c = CaseSummary
    return select(c.finished_at, true(), c.process_key, literal(1), case((c.reworked, 1), else_=0),
                  case((c.late, 0), else_=1)).where(*_between(c.finished_at, since, until),
                                                    *process_in(c.process_key, processes))


def _cycle_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    c = CaseSummary
    return select(c.finished_at, true(), c.process_key, c.finished_at, c.started_at).where(
        *_between(c.finished_at, since, until), *process_in(c.process_key, processes))


def _wait_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    t = HumanTask
    return select(t.completed_at, true(), t.process_key, t.element_id, t.name, literal(1), t.completed_at,
                  t.created_at).where(*_completed_between(since, until), *process_in(t.process_key, processes))


def _flow_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    e = Event
    return select(e.at, true(), e.process_key, cast(e.data, Text), literal(1)).where(
        e.kind == literal_column(f"'{EventKind.GATEWAY_DECISION.value}'"), *_between(e.at, since, until),
        *process_in(e.process_key, processes))


def _handling_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    t = HumanTask
    began = case((t.claimed_at < t.completed_at, t.claimed_at), else_=t.created_at)
    late = case((and_(t.due_at.is_not(None), t.completed_at > t.due_at), 1), else_=0)
    return select(t.completed_at, true(), t.process_key, t.completed_by_id, literal(1), late, t.completed_at,
                  began).where(*_completed_between(since, until), t.completed_by_id.is_not(None),
                               *process_in(t.process_key, processes))


def _case_items(process: str, moment: Any, *columns: Any, finished: bool = False) -> Callable[..., Select]:
    """Items of one shipped process's cases by ``moment`` (their start, or their end for ``finished`` cases); a
    running case's are not settled (its status and form data can still change)."""
    i = ProcessInstance
    where = [i.status == InstanceStatus.COMPLETED] if finished else []

    def items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
        return select(moment, true() if finished else i.status.in_(_ENDED), i.process_key, *columns).where(
            i.process_key == process, *where, *_between(moment, since, until))
    return items


def _compliance_items(since: datetime, until: datetime, processes: list[str] | None) -> Select:
    """The dealer audits' first inspections: checklist from the task's submission, region from the case."""
    i, t = ProcessInstance, HumanTask
    region = func.coalesce(i.data["region"].as_string(), "")
    items = [case((t.submitted[name].as_boolean(), 1), else_=0) for name in CHECKLIST]
    return (select(t.completed_at, i.status.in_(_ENDED), t.process_key, region, literal(1), *items)
            .join(i, i.id == t.instance_id)
            .where(t.process_key == AUDITS, t.element_id == "inspect_dealer", *_completed_between(since, until)))


_i = ProcessInstance
_budget = _i.data["total_budget"].as_float()
_in_force = _i.status == InstanceStatus.COMPLETED
FIGURES = {f.name: f for f in (
    Figure("started", _started_items, keys=1, counts=1, per="week"),
    Figure("finished", _finished_items, keys=1, counts=3, per="week"),
    Figure("cycle", _cycle_items, keys=1, counts=0, durations=True),
    Figure("waits", _wait_items, keys=3, counts=1, durations=True),
    Figure("flows", _flow_items, keys=2, counts=1),
    Figure("handling", _handling_items, keys=2, counts=2, durations=True, per="month"),
    Figure("drawings", _case_items(DRAWINGS, _i.started_at, _i.status, literal(1)), keys=2, counts=1, per="month"),
    Figure("compliance", _compliance_items, keys=2, counts=1 + len(CHECKLIST)),
    Figure("complaints", _case_items(
        COMPLAINTS, _i.ended_at,
        func.coalesce(_i.data["confirmed_type"].as_string(), _i.data["problem_type"].as_string(), ""), literal(1),
        _i.ended_at, _i.started_at, finished=True),
        keys=2, counts=1, durations=True),
    Figure("budgets", _case_items(
        PLANS, _i.started_at, func.coalesce(_i.data["plan_year"].as_string(), ""), literal(1),
        func.coalesce(_budget, 0), case((_in_force, 1), else_=0), case((_in_force, func.coalesce(_budget, 0)),
                                                                      else_=0)), keys=2, counts=4),
)}
#: the figures each part of the dashboard adds up
PART_FIGURES = {"cases": ("started", "finished", "cycle"), "steps": ("waits", "flows"), "employees": ("handling",),
                "forms": ("drawings", "compliance", "complaints", "budgets")}


# --- the figures ---------------------------------------------------------------------------------


@dataclass
class StepFigures:
    element_id: str
    name: str
    open: int = 0
    completed: int = 0
    median_wait_hours: float | None = None


@dataclass
class ProcessFigures:
    key: str
    title: str
    started: int = 0
    finished: int = 0
    reworked: int = 0
    on_time: int = 0
    cycle_median_hours: float | None = None
    cycle_p90_hours: float | None = None
    started_per_week: dict[str, int] = field(default_factory=dict)
    finished_per_week: dict[str, int] = field(default_factory=dict)
    steps: dict[str, StepFigures] = field(default_factory=dict)
    #: sequence flow id → how often a gateway took it
    flows: dict[str, int] = field(default_factory=dict)

    @property
    def rework_rate(self) -> float | None:
        return self.reworked / self.finished if self.finished else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None

    @property
    def work_in_progress(self) -> int:
        return sum(s.open for s in self.steps.values())


@dataclass
class DueRow:
    key: str
    name: str
    overdue: int = 0
    due_soon: int = 0


@dataclass
class EmployeeMonth:
    user_id: int
    name: str
    month: str
    completed: int
    late: int
    median_handling_hours: float | None = None


@dataclass
class FormFigures:
    """Figures of the shipped processes from their form data (JSON values of the cases and task submissions)."""

    #: engineering-drawing applications: (month started, status) → cases
    drawings: dict[tuple[str, str], int] = field(default_factory=dict)
    #: dealer audits' first inspections: region → (inspections, {checklist item: compliant})
    compliance: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    #: finished complaints: category → (cases, median resolution hours)
    complaints: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    #: marketing plans started in the range: plan year → (plans, budget requested, plans in force, budget approved)
    budgets: dict[str, tuple[int, float, int, float]] = field(default_factory=dict)


@dataclass
class Dashboard:
    filters: Filters
    scope: Scope
    weeks: list[str]
    months: list[str]
    processes: list[ProcessFigures]
    overdue_by_role: list[DueRow]
    overdue_by_person: list[DueRow]
    employees: list[EmployeeMonth]
    forms: FormFigures
    #: the processes the filter's list offers, the roles likewise
    process_choices: list[tuple[str, str]]
    role_choices: list[tuple[str, str]]


def _weeks(filters: Filters) -> list[str]:
    monday = filters.start - timedelta(days=filters.start.weekday())
    out = []
    while monday <= filters.end:
        out.append(monday.isoformat())
        monday += timedelta(days=7)
    return out


def _months(filters: Filters) -> list[str]:
    year, month = filters.start.year, filters.start.month
    out = []
    while (year, month) <= (filters.end.year, filters.end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600.0, 2)


#: the parts of the dashboard each table needs (a CSV download computes only those)
PARTS = frozenset({"cases", "steps", "due", "employees", "forms"})
TABLE_PARTS = {"cases": {"cases", "steps"}, "weekly": {"cases"}, "steps": {"steps"}, "overdue-roles": {"due"},
               "overdue-people": {"due"}, "employees": {"employees"}, "drawings": {"forms"},
               "compliance": {"forms"}, "complaints": {"forms"}, "budgets": {"forms"}}


def dashboard(session: Session, actor: User, filters: Filters, parts: frozenset[str] | set[str] = PARTS,
              ) -> Dashboard:
    """The figures of the dashboard that ``actor`` may see, for ``filters`` (only ``parts`` of them)."""
    scope = scope_of(session, actor)
    visible = select(Process.key, Process.title).order_by(Process.title)
    if scope.processes is not None:
        visible = visible.where(Process.key.in_(scope.processes))
    process_choices = [(k, t) for k, t in session.execute(visible)]
    keys = [k for k, _ in process_choices if filters.process in (None, k)]
    titles = dict(process_choices)
    processes = {k: ProcessFigures(k, titles[k]) for k in keys}
    # a person's own figures count every process they worked in, visible to them or not
    wanted: dict[Figure, list[str] | None] = {
        FIGURES[name]: ([filters.process] if filters.process else None) if part == "employees" else keys
        for part in sorted(parts) for name in PART_FIGURES.get(part, ())}
    found = collect(session, wanted, filters.start, filters.end + timedelta(days=1), utcnow())
    if "cases" in parts:
        _case_figures(found, processes)
    if "steps" in parts:
        _step_figures(session, filters, found, processes)
    roles = session.execute(select(Role.key, Role.name).where(Role.active.is_(True)).order_by(Role.name)).all()
    by_role, by_person = _due(session, filters, scope) if "due" in parts else ([], [])
    return Dashboard(
        filters=filters, scope=scope, weeks=_weeks(filters), months=_months(filters),
        processes=list(processes.values()), overdue_by_role=by_role, overdue_by_person=by_person,
        employees=_employees(session, filters, scope, found) if "employees" in parts else [],
        forms=_form_figures(found, set(processes)) if "forms" in parts else FormFigures(),
        process_choices=process_choices,
        role_choices=[(k, n) for k, n in roles],
    )


def seal_recent(session: Session) -> int:
    """Seals what the pages ask for most, so that no request pays for it: the days and months over in the default
    range (the last :data:`DEFAULT_DAYS` days), and in the longest one (:data:`MAX_DAYS`, whose whole months serve
    every range of the last year). The worker runs it every hour. Returns how many pieces it sealed."""
    now = utcnow()
    until = now.date() + timedelta(days=1)
    return sum(seal(session, FIGURES.values(), until - timedelta(days=days), until, now)
               for days in (DEFAULT_DAYS, MAX_DAYS))


def _case_figures(found: dict[str, dict[tuple, Group]], processes: dict[str, ProcessFigures]) -> None:
    for (key, week), group in found["started"].items():
        figures = processes[key]
        figures.started_per_week[week] = figures.started_per_week.get(week, 0) + group.counts[0]
        figures.started += group.counts[0]
    for (key, week), group in found["finished"].items():
        figures = processes[key]
        n, reworked, on_time = group.counts
        figures.finished_per_week[week] = figures.finished_per_week.get(week, 0) + n
        figures.finished += n
        figures.reworked += reworked
        figures.on_time += on_time
    for (key,), group in found["cycle"].items():
        median, p90 = group.percentiles(0.5, 0.9)
        figures = processes[key]
        figures.cycle_median_hours, figures.cycle_p90_hours = _hours(median), _hours(p90)


def _step_figures(session: Session, filters: Filters, found: dict[str, dict[tuple, Group]],
                  processes: dict[str, ProcessFigures]) -> None:
    """Open tasks per step now (from the open tasks), completions and waiting times per step and the flows the
    gateways took (from the roll-ups)."""
    t = HumanTask

    def step(key: str, element_id: str, name: str) -> StepFigures:
        return processes[key].steps.setdefault(element_id, StepFigures(element_id, name))

    if processes:
        wip = (select(t.process_key, t.element_id, func.min(t.name), func.count())
               .where(t.status == TaskStatus.OPEN, t.process_key.in_(list(processes)))
               .group_by(t.process_key, t.element_id))
        if filters.role:
            wip = wip.where(exists().where(TaskCandidate.task_id == t.id, TaskCandidate.role_key == filters.role))
        for key, element_id, name, n in session.execute(wip):
            step(key, element_id, name).open = n
    waits: dict[tuple[str, str], Group] = {}
    names: dict[tuple[str, str], str] = {}
    for (key, element_id, name), group in found["waits"].items():  # a step renamed in a later version: one step
        merge_group(waits, (key, element_id), group.counts, group.runs)
        names[(key, element_id)] = min(name, names.get((key, element_id), name))
    for (key, element_id), group in waits.items():
        figures = step(key, element_id, names[(key, element_id)])
        figures.completed = group.counts[0]
        figures.median_wait_hours = _hours(group.percentiles(0.5)[0])
    # a decision's data names the flow it took: the few distinct texts per process are parsed here
    for (key, data), group in found["flows"].items():
        flow_id = json.loads(data).get("flow") if data else None
        if flow_id:
            flows = processes[key].flows
            flows[flow_id] = flows.get(flow_id, 0) + group.counts[0]


def _due(session: Session, filters: Filters, scope: Scope) -> tuple[list[DueRow], list[DueRow]]:
    """Open tasks overdue and due soon, by candidate role and by the person holding them."""
    now = utcnow()
    t, i = HumanTask, ProcessInstance
    overdue = func.sum(case((t.due_at < now, 1), else_=0))
    soon = func.sum(case((and_(t.due_at >= now, t.due_at < now + DUE_SOON), 1), else_=0))
    where = [t.status == TaskStatus.OPEN, t.due_at.is_not(None), t.due_at < now + DUE_SOON]
    if filters.process:
        where.append(exists().where(i.id == t.instance_id, i.process_key == filters.process))
    cand = aliased(TaskCandidate)  # the by-role query selects from TaskCandidate itself
    if filters.role:
        where.append(exists().where(cand.task_id == t.id, cand.role_key == filters.role))
    if not scope.everything:
        allowed = [t.assignee_id.in_(scope.people or {scope.user_id})]
        if scope.processes:
            allowed.append(exists().where(i.id == t.instance_id, i.process_key.in_(scope.processes)))
        if scope.roles:
            allowed.append(exists().where(cand.task_id == t.id, cand.role_key.in_(scope.roles)))
        where.append(or_(*allowed))
    c = TaskCandidate
    by_role_query = (select(c.role_key, func.min(Role.name), overdue, soon).join(t, t.id == c.task_id)
                     .join(Role, Role.key == c.role_key).where(*where).group_by(c.role_key).order_by(c.role_key))
    if scope.roles is not None and not scope.processes:
        by_role_query = by_role_query.where(c.role_key.in_(scope.roles))
    by_role = [DueRow(k, n, int(o or 0), int(s or 0)) for k, n, o, s in session.execute(by_role_query)]
    people = (select(t.assignee_id, func.min(User.full_name), overdue, soon).outerjoin(User, User.id == t.assignee_id)
              .where(*where).group_by(t.assignee_id))
    by_person = sorted((DueRow(str(uid) if uid else "", name or "Not claimed yet", int(o or 0), int(s or 0))
                        for uid, name, o, s in session.execute(people)), key=lambda r: (r.key == "", r.name))
    return by_role, by_person


def _employees(session: Session, filters: Filters, scope: Scope, found: dict[str, dict[tuple, Group]],
               ) -> list[EmployeeMonth]:
    """Tasks completed, late and the median handling time per person and month (the roll-ups' groups of
    process, person and month, the processes of a person and month merged)."""
    people = None if scope.people is None else set(scope.people)
    if filters.role:
        members = set(session.scalars(select(UserRole.user_id).where(UserRole.role_key == filters.role)))
        people = members if people is None else people & members
    months: dict[tuple[int, str], Group] = {}
    for (_process, user_id, month), group in found["handling"].items():
        if people is not None and user_id not in people:
            continue
        merge_group(months, (user_id, month), group.counts, group.runs)
    if not months:
        return []
    names = dict(session.execute(select(User.id, User.full_name).where(User.id.in_({k[0] for k in months}))).all())
    out = [EmployeeMonth(uid, names.get(uid, "?"), month, int(group.counts[0]), int(group.counts[1]),
                         _hours(group.percentiles(0.5)[0]))
           for (uid, month), group in months.items()]
    return sorted(out, key=lambda e: (e.name, e.month))


def _form_figures(found: dict[str, dict[tuple, Group]], processes: set[str]) -> FormFigures:
    """The shipped processes' own figures, from their form data (read with JSON operators when a piece is
    added up, see :data:`FIGURES`)."""
    out = FormFigures()
    if DRAWINGS in processes:
        out.drawings = {(month, status): group.counts[0]
                        for (_p, status, month), group in found["drawings"].items()}
    if AUDITS in processes:
        for (_p, region), group in found["compliance"].items():
            n, *items = group.counts
            out.compliance[region or "—"] = (n, dict(zip(CHECKLIST, items, strict=True)))
    if COMPLAINTS in processes:
        out.complaints = {category or "—": (group.counts[0], _hours(group.percentiles(0.5)[0]))
                          for (_p, category), group in sorted(found["complaints"].items())}
    if PLANS in processes:
        out.budgets = {year or "—": (n, float(requested), int(in_force), float(approved))
                       for (_p, year), group in sorted(found["budgets"].items())
                       for n, requested, in_force, approved in [group.counts]}
    return out



def chart_data(board: Dashboard) -> dict[str, Any]:
    """What the page's charts draw (JSON for chart.js): the same numbers as the tables under them."""
    per_process = [p for p in board.processes if p.started or p.finished]
    finished = [p for p in per_process if p.finished]
    people = sorted({e.name for e in board.employees})
    done = {(e.name, e.month): e.completed for e in board.employees}
    charts = {
        "weekly-started": {"type": "bar", "stacked": True, "labels": board.weeks, "datasets": [
            {"label": p.title, "data": [p.started_per_week.get(w, 0) for w in board.weeks]} for p in per_process]},
        "weekly-finished": {"type": "bar", "stacked": True, "labels": board.weeks, "datasets": [
            {"label": p.title, "data": [p.finished_per_week.get(w, 0) for w in board.weeks]} for p in per_process]},
        "cycle": {"type": "bar", "stacked": False, "labels": [p.title for p in finished], "datasets": [
            {"label": "Median (h)", "data": [p.cycle_median_hours for p in finished]},
            {"label": "90th percentile (h)", "data": [p.cycle_p90_hours for p in finished]}]},
        "overdue-roles": {"type": "bar", "stacked": True, "labels": [r.name for r in board.overdue_by_role],
                          "datasets": [{"label": "Overdue", "data": [r.overdue for r in board.overdue_by_role]},
                                       {"label": "Due soon", "data": [r.due_soon for r in board.overdue_by_role]}]},
        "employees": {"type": "bar", "stacked": False, "labels": board.months, "datasets": [
            {"label": name, "data": [done.get((name, m), 0) for m in board.months]} for name in people]},
    }
    forms = board.forms
    statuses = sorted({status for _, status in forms.drawings})
    regions = sorted(forms.compliance)
    charts.update({
        "drawings": {"type": "bar", "stacked": True, "labels": board.months, "datasets": [
            {"label": status, "data": [forms.drawings.get((m, status), 0) for m in board.months]}
            for status in statuses]},
        "compliance": {"type": "bar", "stacked": False, "labels": list(CHECKLIST.values()), "datasets": [
            {"label": region, "data": [round(100.0 * forms.compliance[region][1][name] / forms.compliance[region][0], 1)
                                       for name in CHECKLIST]} for region in regions]},
        "complaints": {"type": "bar", "stacked": False, "labels": list(forms.complaints), "datasets": [
            {"label": "Cases", "data": [n for n, _ in forms.complaints.values()]},
            {"label": "Median resolution time (h)", "data": [h for _, h in forms.complaints.values()]}]},
        "budgets": {"type": "bar", "stacked": False, "labels": list(forms.budgets), "datasets": [
            {"label": "Requested", "data": [v[1] for v in forms.budgets.values()]},
            {"label": "Approved", "data": [v[3] for v in forms.budgets.values()]}]},
    })
    return {"charts": charts, "diagram": _diagram_data(board)}


def diagram_process(board: Dashboard) -> ProcessFigures | None:
    """The process whose diagram the page shows: the filtered one, else the one with most work."""
    if not board.processes:
        return None
    return max(board.processes, key=lambda p: (p.key == board.filters.process, p.started + p.work_in_progress))


def _diagram_data(board: Dashboard) -> dict[str, Any] | None:
    process = diagram_process(board)
    if process is None:
        return None
    return {"process": process.key, "started": process.started, "flows": process.flows,
            "steps": {s.element_id: {"open": s.open, "completed": s.completed, "wait": s.median_wait_hours}
                      for s in process.steps.values()}}


# --- the figures as tables: what the page shows under each chart and what its CSV links download ---------


@dataclass
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list[Any]]


def _rate(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 1)


def tables(board: Dashboard) -> dict[str, Table]:
    """Every figure as a table of plain values, keyed by the name its CSV download is found under."""
    # the processes with cases in the range, as the chart draws them (a year of empty weeks says nothing)
    weekly = [[p.title, w, p.started_per_week.get(w, 0), p.finished_per_week.get(w, 0)]
              for p in board.processes if p.started or p.finished for w in board.weeks]
    cases = [[p.title, p.started, p.finished, p.cycle_median_hours, p.cycle_p90_hours, _rate(p.rework_rate),
              _rate(p.on_time_rate), p.work_in_progress] for p in board.processes]
    steps = [[p.title, s.name, s.open, s.completed, s.median_wait_hours]
             for p in board.processes for s in sorted(p.steps.values(), key=lambda s: s.name)]
    out = [
        Table("cases", "Cases per process", ["Process", "Started", "Finished", "Median cycle time (h)",
                                             "90th percentile cycle time (h)", "Rework rate (%)",
                                             "Finished on time (%)", "Work in progress"], cases),
        Table("weekly", "Cases started and finished per week", ["Process", "Week of", "Started", "Finished"],
              weekly),
        Table("steps", "Steps: work in progress and waiting time",
              ["Process", "Step", "Open now", "Completed", "Median waiting time (h)"], steps),
        Table("overdue-roles", "Overdue and due-soon tasks by role", ["Role", "Overdue", "Due soon"],
              [[r.name, r.overdue, r.due_soon] for r in board.overdue_by_role]),
        Table("overdue-people", "Overdue and due-soon tasks by person", ["Person", "Overdue", "Due soon"],
              [[r.name, r.overdue, r.due_soon] for r in board.overdue_by_person]),
        Table("employees", "Per employee and month", ["Employee", "Month", "Tasks completed",
                                                      "Median handling time (h)", "Completed late"],
              [[e.name, e.month, e.completed, e.median_handling_hours, e.late] for e in board.employees]),
    ]
    forms = board.forms
    statuses = sorted({status for _, status in forms.drawings})
    out += [
        Table("drawings", "Engineering-drawing applications per month by status", ["Month", *statuses, "Total"],
              [[m, *[forms.drawings.get((m, s), 0) for s in statuses],
                sum(forms.drawings.get((m, s), 0) for s in statuses)] for m in board.months]
              if forms.drawings else []),
        Table("compliance", "Dealer-audit compliance at the first inspection (%)",
              ["Region", "Inspections", *CHECKLIST.values()],
              [[region, n, *[round(100.0 * ok[name] / n, 1) for name in CHECKLIST]]
               for region, (n, ok) in sorted(forms.compliance.items())]),
        Table("complaints", "Finished complaints by category", ["Category", "Cases", "Median resolution time (h)"],
              [[c, n, h] for c, (n, h) in forms.complaints.items()]),
        Table("budgets", "Marketing plans: budget requested and approved",
              ["Plan year", "Plans", "Budget requested", "Plans in force", "Budget approved"],
              [[y, n, req, k, ok] for y, (n, req, k, ok) in forms.budgets.items()]),
    ]
    return {t.name: t for t in out}


def to_csv(table: Table) -> str:
    """A figure's numbers as CSV; text cells a spreadsheet would read as a formula are neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow([csv_cell("" if v is None else v) for v in row])
    return out.getvalue()


def diagram_xml(session: Session, actor: User, process_key: str) -> str:
    """The latest published diagram of a process whose figures ``actor`` sees (the bottleneck view).

    :raises NotAllowed: the process's figures are not for ``actor``
    :raises NotFound: no such process or no published version
    """
    scope = scope_of(session, actor)
    if session.get(Process, process_key) is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if scope.processes is not None and process_key not in scope.processes:
        raise NotAllowed("The figures of this process are for its owner and management.")
    definition = defs.latest_definition(session, process_key)
    return definition.xml
