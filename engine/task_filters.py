"""Inbox filters: criteria over a person's open tasks, built-in and saved filters with their counts, and
the change token the inbox polls for live updates.

What a filter may show is fixed before any criterion applies: the open tasks assigned to the person,
and the open tasks of their roles and of the roles they manage (:func:`engine.access.managed_roles`) —
exactly the tasks whose page they may open. Criteria only narrow that set, so a count never includes
a task its viewer may not see. Every query starts from an index (the assignee index of
``human_tasks`` or ``task_candidates``' role index) and reaches cases by primary key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session

from . import inbox as queues
from .access import managed_roles
from .clock import utcnow
from .db import HumanTask, Process, ProcessInstance, Role, SavedFilter, TaskCandidate, User, UserRole
from .errors import InvalidForm, NotFound
from .inbox import PAGE_SIZE, Inbox, InboxRow, page_query
from .notify import unread_count
from .vocabulary import TaskStatus

#: Priorities (``camunda:priority``, 0–100) in words: at least HIGH is "high", at most LOW "low", "normal" between.
HIGH_PRIORITY, LOW_PRIORITY = 70, 30
PRIORITIES = {"high": "High", "normal": "Normal", "low": "Low"}
DUE = {"overdue": "Overdue", "today": "Due today", "week": "Due this week"}
#: ``role`` criterion: all my roles and the roles I manage (""), only my own roles, or one role key
MY_ROLES = "mine"
#: ``assignee`` criterion besides a username
ME, UNASSIGNED = "me", "unassigned"
#: sidebar key prefix of a managed role's tasks
TEAM = "team-"
MAX_TEXT = 100
MAX_NAME = 80
MAX_SAVED = 30


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What a person narrows their open tasks by; an empty field does not narrow."""

    process: str = ""
    step: str = ""
    role: str = ""
    assignee: str = ""
    priority: str = ""
    due: str = ""
    text: str = ""
    #: only my tasks whose follow-up date is still ahead (otherwise they are left out of my view)
    follow_up: bool = False

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> TaskFilter:
        """Criteria from a query string or saved JSON; a value out of its choices is refused per field
        (the values stay, so the form can show them with the message)."""
        names = {f.name for f in fields(cls)}
        raw = {k: str(values.get(k) or "").strip() for k in names - {"follow_up"}}
        errors = {}
        if raw["priority"] and raw["priority"] not in PRIORITIES:
            errors["priority"] = "Choose high, normal or low."
        if raw["due"] and raw["due"] not in DUE:
            errors["due"] = "Choose overdue, today or this week."
        if len(raw["text"]) > MAX_TEXT:
            errors["text"] = f"Enter at most {MAX_TEXT} characters."
        for name in ("process", "step", "role", "assignee"):
            if len(raw[name]) > 200:
                errors[name] = "Enter at most 200 characters."
        if errors:
            raise InvalidForm(errors, raw)
        follow_up = str(values.get("follow_up") or "").lower() in ("1", "true", "on", "yes")
        return cls(**raw, follow_up=follow_up)

    def as_dict(self) -> dict[str, Any]:
        """The criteria that narrow (for saving and for links)."""
        return {k: v for k, v in asdict(self).items() if v}

    @property
    def is_empty(self) -> bool:
        return not self.as_dict()


@dataclass(frozen=True, slots=True)
class BuiltIn:
    key: str
    label: str
    criteria: TaskFilter


BUILT_IN: tuple[BuiltIn, ...] = (
    BuiltIn("mine", "My tasks", TaskFilter(assignee=ME)),
    BuiltIn("unassigned", "Unassigned in my roles", TaskFilter(assignee=UNASSIGNED, role=MY_ROLES)),
    BuiltIn("overdue", "Overdue", TaskFilter(due="overdue")),
    BuiltIn("week", "Due this week", TaskFilter(due="week")),
    BuiltIn("follow-up", "Follow-up", TaskFilter(follow_up=True)),
)
_BUILT_IN = {b.key: b for b in BUILT_IN}


@dataclass(frozen=True, slots=True)
class FilterCount:
    """A sidebar entry: a built-in (``key``) or saved (``saved_id``) filter and how many tasks it shows now."""

    label: str
    count: int
    criteria: TaskFilter
    key: str = ""
    saved_id: int | None = None


@dataclass
class FilteredInbox:
    """One page of a filter's tasks (or, with no filter, the two sections of :func:`engine.inbox.inbox`),
    with the sidebar's counts, the choices of the filter form and the change token of live updates."""

    criteria: TaskFilter
    rows: list[InboxRow]
    total: int
    page: int
    sidebar: list[FilterCount]
    processes: list[tuple[str, str]]
    steps: list[tuple[str, str]]
    roles: list[tuple[str, str]]
    people: list[tuple[str, str]]
    managed: set[str] = field(default_factory=set)
    page_size: int = PAGE_SIZE
    selected: str = ""
    sections: Inbox | None = None
    token: str = ""


class _Scope:
    """Who is asking: their id, own roles and managed roles (read once per request), and the statement
    parameters every filter of theirs shares."""

    def __init__(self, session: Session, actor: User, now: datetime | None = None):
        self.actor = actor
        self.own = set(actor.role_keys)
        self.managed = managed_roles(session, actor)
        self.roles = self.own | self.managed
        now = now or utcnow()
        today = _day_start(now)
        self.params: dict[str, Any] = {
            "me": actor.id, "visible_roles": sorted(self.roles), "now": now, "today": today,
            "tomorrow": today + timedelta(days=1), "week_end": today + timedelta(days=7 - today.weekday())}

    def visible(self) -> Select:
        """Ids of the open tasks the filters may show: mine, and those of my roles and of the roles I manage."""
        return _visible(bool(self.roles))

    def roles_of(self, role: str) -> list[str]:
        """The roles a ``role`` criterion names: my own (``mine``), or one of mine or of those I manage."""
        if role == MY_ROLES:
            return sorted(self.own)
        if role not in self.roles:
            raise InvalidForm({"role": "Choose one of your roles or a role you manage."}, {"role": role})
        return [role]


def _day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


# The statements are built once per shape (which criteria a filter uses) and kept: an inbox request only
# binds values. Building and hashing a dozen SQL expression trees per request cost more than running them.

_ME = bindparam("me", type_=Integer)
_NOW = bindparam("now", type_=DateTime)
_TODAY, _TOMORROW, _WEEK_END = (bindparam(name, type_=DateTime) for name in ("today", "tomorrow", "week_end"))


@cache
def _visible(with_roles: bool) -> Select:
    mine = select(HumanTask.id).where(HumanTask.status == TaskStatus.OPEN, HumanTask.assignee_id == _ME)
    if not with_roles:
        return mine
    return union(mine, select(TaskCandidate.task_id).where(
        TaskCandidate.role_key.in_(bindparam("visible_roles", expanding=True, type_=String))))


def _shape(criteria: TaskFilter) -> tuple:
    """Which statement a filter needs: the criteria it uses, and the words that change the SQL."""
    assignee = criteria.assignee if criteria.assignee in ("", ME, UNASSIGNED) else "person"
    return (assignee, criteria.follow_up, bool(criteria.role), criteria.priority, criteria.due, bool(criteria.step),
            bool(criteria.process), bool(criteria.text))


def _like(text: str) -> str:
    """A LIKE pattern for ``text`` anywhere, its wildcards taken literally (escape character ``/``)."""
    return "%" + text.lower().replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def _params(scope: _Scope, criteria: TaskFilter, n: int) -> dict[str, Any]:
    """The values of filter number ``n``'s parameters.

    :raises InvalidForm: a role that is neither the person's nor managed by them
    """
    values: dict[str, Any] = {}
    if criteria.role:
        values[f"roles_{n}"] = scope.roles_of(criteria.role)
    if criteria.assignee not in ("", ME, UNASSIGNED):
        values[f"person_{n}"] = criteria.assignee
    if criteria.step:
        values[f"step_{n}"] = criteria.step
    if criteria.process:
        values[f"process_{n}"] = criteria.process
    if criteria.text:
        values[f"text_{n}"] = _like(criteria.text)
    return values


@cache
def _condition(shape: tuple | None, n: int) -> ColumnElement[bool]:
    """What a filter of ``shape`` asks of a visible open task (a ``human_tasks`` row joined with its case);
    its own parameters end in ``_n``. Dates are UTC days; "this week" ends with Sunday. A person is looked
    up by username in the statement (an unknown one matches nothing; :func:`filtered_inbox` says so first)."""
    if shape is None:  # a saved filter that no longer applies
        return false()
    assignee, follow_up, role, priority, due, step, process, text = shape
    terms: list[ColumnElement[bool]] = []
    if assignee == ME or follow_up:
        terms.append(HumanTask.assignee_id == _ME)
    if follow_up:
        terms.append(HumanTask.follow_up_at > _NOW)
    else:  # my tasks waiting for their follow-up date stay out of every other view of mine
        terms.append(or_(HumanTask.assignee_id.is_(None), HumanTask.assignee_id != _ME,
                         HumanTask.follow_up_at.is_(None), HumanTask.follow_up_at <= _NOW))
    if role:
        terms.append(select(TaskCandidate.task_id).where(
            TaskCandidate.task_id == HumanTask.id,
            TaskCandidate.role_key.in_(bindparam(f"roles_{n}", expanding=True, type_=String))).exists())
    if assignee == UNASSIGNED:
        terms.append(HumanTask.assignee_id.is_(None))
    elif assignee == "person":
        person = bindparam(f"person_{n}", type_=String)
        terms.append(HumanTask.assignee_id == select(User.id).where(User.username == person).scalar_subquery())
    if step:
        terms.append(HumanTask.element_id == bindparam(f"step_{n}", type_=String))
    if priority == "high":
        terms.append(HumanTask.priority >= HIGH_PRIORITY)
    elif priority == "low":
        terms.append(HumanTask.priority <= LOW_PRIORITY)
    elif priority == "normal":
        terms.append(and_(HumanTask.priority > LOW_PRIORITY, HumanTask.priority < HIGH_PRIORITY))
    if due == "overdue":
        terms.append(HumanTask.due_at < _NOW)
    elif due == "today":
        terms.append(and_(HumanTask.due_at >= _TODAY, HumanTask.due_at < _TOMORROW))
    elif due == "week":
        terms.append(and_(HumanTask.due_at >= _TODAY, HumanTask.due_at < _WEEK_END))
    if process:
        terms.append(ProcessInstance.process_key == bindparam(f"process_{n}", type_=String))
    if text:
        pattern = bindparam(f"text_{n}", type_=String)
        terms.append(or_(func.lower(ProcessInstance.title).like(pattern, escape="/"),
                         func.lower(func.coalesce(ProcessInstance.business_key, "")).like(pattern, escape="/")))
    return and_(*terms)


def _visible_tasks(with_roles: bool, *columns: Any) -> Select:
    """``columns`` over the visible open tasks with their cases: driven by the (few) visible ids, each task
    and case read by its primary key, never a walk over all open tasks."""
    visible = _visible(with_roles).subquery("visible")
    return (select(*columns).select_from(HumanTask).join(visible, visible.c.id == HumanTask.id)
            .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
            .where(HumanTask.status == TaskStatus.OPEN))


@cache
def _tasks_statement(with_roles: bool, shape: tuple) -> Select:
    return _visible_tasks(with_roles, HumanTask.id).where(_condition(shape, 0))


@lru_cache(maxsize=512)
def _count_statement(with_roles: bool, shapes: tuple) -> Select:
    return _visible_tasks(with_roles, *(func.count().filter(_condition(shape, n)) for n, shape in enumerate(shapes)))


def tasks_query(scope: _Scope, criteria: TaskFilter) -> tuple[Select, dict[str, Any]]:
    """The ids of the open tasks ``criteria`` shows to the scope's person (unordered; see :func:`page_query`),
    and the statement's parameters.

    :raises InvalidForm: a role criterion that is not the person's
    """
    return _tasks_statement(bool(scope.roles), _shape(criteria)), {**scope.params, **_params(scope, criteria, 0)}


def count_query(scope: _Scope, filters: list[TaskFilter | None]) -> tuple[Select, dict[str, Any]]:
    """How many visible tasks each filter shows: one pass over the visible tasks, one statement, and its
    parameters. A filter that names a role no longer the person's (or ``None``) counts 0."""
    shapes, params = [], dict(scope.params)
    for n, criteria in enumerate(filters):
        try:
            params.update(_params(scope, criteria, n) if criteria is not None else {})
            shapes.append(_shape(criteria) if criteria is not None else None)
        except InvalidForm:
            shapes.append(None)
    return _count_statement(bool(scope.roles), tuple(shapes)), params


def _counts(session: Session, scope: _Scope, filters: list[TaskFilter | None]) -> list[int]:
    if not filters:
        return []
    statement, params = count_query(scope, filters)
    return list(session.execute(statement, params).one())


def _check_person(session: Session, criteria: TaskFilter) -> None:
    if criteria.assignee not in ("", ME, UNASSIGNED) and session.scalar(
            select(User.id).where(User.username == criteria.assignee)) is None:
        raise InvalidForm({"assignee": "There is no such person."}, {"assignee": criteria.assignee})


def sidebar(session: Session, actor: User, *, scope: _Scope | None = None) -> list[FilterCount]:
    """The built-in filters, ``actor``'s teams and saved filters, with how many tasks each shows now."""
    scope = scope or _Scope(session, actor)
    saved = list(session.scalars(select(SavedFilter).where(SavedFilter.user_id == actor.id).order_by(SavedFilter.name)))
    entries: list[tuple[str, TaskFilter | None, str, int | None]] = [
        (b.label, b.criteria, b.key, None) for b in BUILT_IN]
    if scope.managed:  # a manager's teams, one entry per managed role
        names = dict(session.execute(select(Role.key, Role.name).where(Role.key.in_(sorted(scope.managed)))).all())
        entries += [(f"Team: {names[key]}", TaskFilter(role=key), f"{TEAM}{key}", None)
                    for key in sorted(scope.managed, key=lambda k: names[k])]
    for row in saved:
        try:
            entries.append((row.name, TaskFilter.parse(row.criteria), "", row.id))
        except InvalidForm:  # saved with choices this version no longer has: listed, counted as nothing
            entries.append((row.name, None, "", row.id))
    numbers = _counts(session, scope, [criteria for _, criteria, _, _ in entries])
    return [FilterCount(label, n, criteria or TaskFilter(), key, saved_id)
            for (label, criteria, key, saved_id), n in zip(entries, numbers, strict=True)]


def resolve(session: Session, actor: User, *, key: str = "", saved_id: int | None = None,
            values: Mapping[str, Any] | None = None) -> tuple[TaskFilter, str]:
    """The criteria of a built-in filter (``key``), one of ``actor``'s saved filters, or ad hoc ``values``;
    with the sidebar key of what is selected (``"saved-<id>"`` for a saved filter)."""
    if saved_id is not None:
        row = session.get(SavedFilter, saved_id)
        if row is None or row.user_id != actor.id:
            raise NotFound("There is no such saved filter.")
        return TaskFilter.parse(row.criteria), f"saved-{row.id}"
    if key.startswith(TEAM):
        return TaskFilter(role=key.removeprefix(TEAM)), key
    if key:
        if key not in _BUILT_IN:
            raise NotFound(f"There is no filter “{key}”.")
        return _BUILT_IN[key].criteria, key
    return TaskFilter.parse(values or {}), ""


def inbox_page(session: Session, actor: User, *, key: str = "", saved_id: int | None = None,
               values: Mapping[str, Any] | None = None, page: int = 1, assigned_page: int = 1,
               available_page: int = 1) -> FilteredInbox:
    """What the inbox page shows: the filter chosen (built-in ``key``, ``saved_id`` or ad hoc ``values``) or,
    with none, my tasks and my roles' queue; the sidebar with counts; and the change token.

    :raises InvalidForm: criteria out of their choices (per field)
    :raises NotFound: a saved filter that is not ``actor``'s
    """
    criteria, selected = resolve(session, actor, key=key, saved_id=saved_id, values=values)
    scope = _Scope(session, actor)
    if criteria.is_empty and not selected:
        result = filtered_inbox(session, actor, criteria, with_rows=False, scope=scope)
        result.sections = queues.inbox(session, actor, assigned_page=assigned_page, available_page=available_page)
    else:
        result = filtered_inbox(session, actor, criteria, page=page, selected=selected, scope=scope)
    result.token = change_token(session, actor, scope=scope)
    return result


def filtered_inbox(session: Session, actor: User, criteria: TaskFilter, *, page: int = 1, selected: str = "",
                   page_size: int = PAGE_SIZE, with_rows: bool = True, scope: _Scope | None = None) -> FilteredInbox:
    """A page of the tasks ``criteria`` shows to ``actor``, the sidebar with counts, and the form's choices."""
    scope = scope or _Scope(session, actor)
    if not with_rows:
        return FilteredInbox(criteria=criteria, rows=[], total=0, page=1, selected=selected, page_size=page_size,
                             sidebar=sidebar(session, actor, scope=scope), managed=scope.managed,
                             **choices(session, scope))
    _check_person(session, criteria)
    tasks, params = tasks_query(scope, criteria)
    page = max(1, page)
    rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size), params).all()
    if not rows and page > 1:  # past the end: the last page
        total = session.scalar(select(func.count()).select_from(tasks.subquery()), params) or 0
        page = max(1, -(-total // page_size))
        rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size), params).all()
    total = rows[0][-1] if rows else 0
    return FilteredInbox(
        criteria=criteria, rows=[InboxRow(*row[:-1]) for row in rows], total=total, page=page,
        sidebar=sidebar(session, actor, scope=scope), selected=selected, page_size=page_size,
        managed=scope.managed, **choices(session, scope))


def choices(session: Session, scope: _Scope) -> dict[str, list[tuple[str, str]]]:
    """The filter form's options: processes, the steps now open for the person, their roles, colleagues."""
    processes = session.execute(select(Process.key, Process.title).order_by(Process.title)).all()
    steps = session.execute(_steps(bool(scope.roles)), scope.params).all()
    roles = session.execute(select(Role.key, Role.name).where(Role.key.in_(sorted(scope.roles)))
                            .order_by(Role.name)).all()
    people = people_of(session, scope.roles)
    return {"processes": [tuple(r) for r in processes], "steps": [tuple(r) for r in steps],
            "roles": [tuple(r) for r in roles], "people": people}


@cache
def _steps(with_roles: bool) -> Select:
    """The steps (element id, name) among the visible open tasks."""
    visible = _visible(with_roles).subquery("visible")
    return (select(HumanTask.element_id, func.min(HumanTask.name)).join(visible, visible.c.id == HumanTask.id)
            .where(HumanTask.status == TaskStatus.OPEN).group_by(HumanTask.element_id)
            .order_by(func.min(HumanTask.name)).limit(200))


def people_of(session: Session, roles: set[str]) -> list[tuple[str, str]]:
    """(username, full name) of the active holders of ``roles``, by name."""
    if not roles:
        return []
    query = (select(User.username, User.full_name).join(UserRole, UserRole.user_id == User.id)
             .where(UserRole.role_key.in_(sorted(roles)), User.active.is_(True))
             .group_by(User.username, User.full_name).order_by(User.full_name))
    return [tuple(r) for r in session.execute(query)]


# --- saved filters ------------------------------------------------------------------------


def save_filter(session: Session, actor: User, name: str, criteria: TaskFilter) -> SavedFilter:
    """Save ``criteria`` under ``name`` for ``actor``; a filter of that name gets the new criteria."""
    name = " ".join(name.split())
    if not name:
        raise InvalidForm({"name": "Enter a name for the filter."}, {"name": name})
    if len(name) > MAX_NAME:
        raise InvalidForm({"name": f"Enter at most {MAX_NAME} characters."}, {"name": name})
    if criteria.is_empty:
        raise InvalidForm({"name": "Choose at least one criterion before saving."}, {"name": name})
    _params(_Scope(session, actor), criteria, 0)  # a role it may not name
    _check_person(session, criteria)
    row = session.scalar(select(SavedFilter).where(SavedFilter.user_id == actor.id, SavedFilter.name == name))
    if row is None:
        mine = session.scalar(select(func.count()).where(SavedFilter.user_id == actor.id)) or 0
        if mine >= MAX_SAVED:
            raise InvalidForm({"name": f"You have {MAX_SAVED} saved filters; delete one first."}, {"name": name})
        row = SavedFilter(user_id=actor.id, name=name, criteria=criteria.as_dict(), created_at=utcnow())
        session.add(row)
    else:
        row.criteria = criteria.as_dict()
    session.flush()
    return row


def delete_filter(session: Session, actor: User, filter_id: int) -> str:
    """Delete one of ``actor``'s saved filters; returns its name."""
    row = session.get(SavedFilter, filter_id)
    if row is None or row.user_id != actor.id:
        raise NotFound("There is no such saved filter.")
    session.delete(row)
    session.flush()
    return row.name


# --- live updates -------------------------------------------------------------------------


def change_token(session: Session, actor: User, *, scope: _Scope | None = None) -> str:
    """A short fingerprint of everything the person's inbox shows: which tasks they may see, who holds
    each, follow-up dates reached, and their unread notifications. It changes when a task arrives,
    leaves, is claimed or handed on; the inbox polls it (one indexed aggregate) instead of the page."""
    scope = scope or _Scope(session, actor)
    row = session.execute(_fingerprint(bool(scope.roles)), scope.params).one()
    text = ":".join(str(v) for v in (*row, unread_count(session, actor), len(scope.roles)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]



@cache
def _fingerprint(with_roles: bool) -> Select:
    """Count, id sum and maximum, holders (weighted by id) and reached follow-ups of the visible open tasks."""
    visible = _visible(with_roles).subquery("visible")
    return (select(func.count(), func.coalesce(func.sum(HumanTask.id), 0), func.coalesce(func.max(HumanTask.id), 0),
                   func.coalesce(func.sum(func.coalesce(HumanTask.assignee_id, 0) * (HumanTask.id % 1000 + 1)), 0),
                   func.count(HumanTask.follow_up_at).filter(HumanTask.follow_up_at > _NOW))
            .join(visible, visible.c.id == HumanTask.id).where(HumanTask.status == TaskStatus.OPEN))
