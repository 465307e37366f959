"""Inbox filters: criteria over a person's open tasks, built-in and saved filters with their counts, and
the change token the inbox polls for live updates.

What a filter may show is fixed before any criterion applies: the open tasks assigned to the person,
and the open tasks of their roles and of the roles they manage (:func:`engine.access.managed_roles`) —
exactly the tasks whose page they may open. Criteria only narrow that set, so a count never includes
a task its viewer may not see. Every query starts from an index (the assignee index of
``human_tasks`` or ``task_candidates``' role index) and reaches cases by primary key; a text search may
start from the cases' trigram indexes on PostgreSQL instead (revision 0016), when few cases match.

The sidebar's counts and the form's steps come from one pass over the person's visible open tasks (finished
tasks are never read), kept in the engine's memo under the fingerprint of those tasks that the live poll
reads too: a page shown again while nothing changed reads that fingerprint instead of counting again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    cast,
    extract,
    false,
    func,
    or_,
    select,
    union,
)
from sqlalchemy.orm import Session

from . import core
from . import inbox as queues
from .access import managed_roles
from .clock import utcnow
from .db import (
    HumanTask,
    Notification,
    Process,
    ProcessInstance,
    Role,
    SavedFilter,
    TaskCandidate,
    User,
    UserRole,
)
from .errors import InvalidForm, NotFound
from .inbox import PAGE_SIZE, Inbox, InboxRow, page_query
from .sql import run
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
#: how long the memo keeps a sidebar at most: changes the fingerprint does not see (a migration moving a
#: task to another step or role, a person renamed whom a saved filter names) show within this time
MEMO_SECONDS = 60
#: steps in the filter form's list
MAX_STEPS = 200


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
    if role:  # ``IN`` rather than ``EXISTS``: the role's tasks are looked up once, not once per visible task
        terms.append(HumanTask.id.in_(select(TaskCandidate.task_id).where(
            TaskCandidate.role_key.in_(bindparam(f"roles_{n}", expanding=True, type_=String)))))
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
        terms.append(_text_condition(n))
    return and_(*terms)


def _text_condition(n: int) -> ColumnElement[bool]:
    """The case's title or business key holds the text (a LIKE pattern, :func:`_like`). ILIKE on the columns
    themselves: PostgreSQL's trigram indexes serve it and their statistics tell the planner how many cases
    match (SQLite compiles it to ``lower(…) LIKE lower(…)``)."""
    pattern = bindparam(f"text_{n}", type_=String)
    return or_(ProcessInstance.title.ilike(pattern, escape="/"),
               ProcessInstance.business_key.ilike(pattern, escape="/"))


def _reads_cases(shape: tuple | None) -> bool:
    """Whether a filter of ``shape`` asks about the task's case (its process or text)."""
    return shape is not None and (shape[6] or shape[7])


def _visible_tasks(with_roles: bool, *columns: Any, with_cases: bool = True) -> Select:
    """``columns`` over the visible open tasks (with their cases): the visible ids come from the indexes,
    each task and case is read by its primary key."""
    visible = _visible(with_roles).subquery("visible")
    query = select(*columns).select_from(HumanTask).join(visible, visible.c.id == HumanTask.id)
    if with_cases:
        query = query.join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    return query.where(HumanTask.status == TaskStatus.OPEN)


@cache
def _tasks_statement(with_roles: bool, shape: tuple) -> Select:
    return _visible_tasks(with_roles, HumanTask.id, with_cases=_reads_cases(shape)).where(_condition(shape, 0))


#: A task's weight in the fingerprint's sums: which task holds a value counts, not only the total
_WEIGHT = HumanTask.id % 1000 + 1

#: The fingerprint of the visible open tasks: count, id sum and maximum, and (weighted by task) holders, reached
#: follow-ups, priorities and due dates — what the inbox's lists and counts read of a task. Whole numbers only:
#: the same rows always give the same token.
_FINGERPRINT = (
    func.count(), func.coalesce(func.sum(HumanTask.id), 0), func.coalesce(func.max(HumanTask.id), 0),
    func.coalesce(func.sum(func.coalesce(HumanTask.assignee_id, 0) * _WEIGHT), 0),
    func.count(HumanTask.follow_up_at).filter(HumanTask.follow_up_at > _NOW),
    func.coalesce(func.sum(HumanTask.priority * _WEIGHT), 0),
    func.coalesce(func.sum(cast(extract("epoch", HumanTask.due_at), BigInteger) * _WEIGHT), 0))
_MAXIMUM = 2  # the one part of the fingerprint that is not a sum


@lru_cache(maxsize=512)
def _count_statement(with_roles: bool, shapes: tuple) -> Select:
    """One pass over the visible open tasks, a row per step: its id and name, the earliest due date still
    ahead (an "overdue" count changes then), the fingerprint's parts, and how many tasks each filter shows."""
    counts = (func.count().filter(_condition(shape, n)) for n, shape in enumerate(shapes))
    return (_visible_tasks(with_roles, HumanTask.element_id, func.min(HumanTask.name),
                           func.min(HumanTask.due_at).filter(HumanTask.due_at >= _NOW), *_FINGERPRINT, *counts,
                           with_cases=any(_reads_cases(shape) for shape in shapes))
            .group_by(HumanTask.element_id))


def tasks_query(scope: _Scope, criteria: TaskFilter) -> tuple[Select, dict[str, Any]]:
    """The ids of the open tasks ``criteria`` shows to the scope's person (unordered; see :func:`page_query`),
    and the statement's parameters.

    :raises InvalidForm: a role criterion that is not the person's
    """
    return _tasks_statement(bool(scope.roles), _shape(criteria)), {**scope.params, **_params(scope, criteria, 0)}


def count_query(scope: _Scope, filters: list[TaskFilter | None]) -> tuple[Select, dict[str, Any]]:
    """How many visible tasks each filter shows, per step (see :func:`_count_statement`), and the statement's
    parameters. A filter that names a role no longer the person's (or ``None``) counts 0."""
    shapes, params = [], dict(scope.params)
    for n, criteria in enumerate(filters):
        try:
            params.update(_params(scope, criteria, n) if criteria is not None else {})
            shapes.append(_shape(criteria) if criteria is not None else None)
        except InvalidForm:
            shapes.append(None)
    return _count_statement(bool(scope.roles), tuple(shapes)), params


@dataclass(frozen=True, slots=True)
class _Tally:
    """What one pass over the visible open tasks gives: each filter's count, the steps (id, name) by name,
    the fingerprint of the tasks it read, and until when the counts hold (a due date passes, the day ends)."""

    counts: tuple[int, ...]
    steps: tuple[tuple[str, str], ...]
    fingerprint: tuple[int, ...]
    until: datetime


def _tally(session: Session, scope: _Scope, filters: list[TaskFilter | None]) -> tuple[_Tally, str]:
    """The counts of ``filters`` and the steps, from the engine's memo when the visible tasks' fingerprint
    (the live poll's statement) is the one they were counted with, else counted in one pass and kept; and
    the change token of the tasks counted."""
    memo = core.of(session).sidebars
    now = scope.params["now"]
    person = (session.get_bind(), scope.actor.id, tuple(sorted(scope.roles)), tuple(filters))
    fingerprint, unread = _poll(session, scope)
    tally = memo.get((*person, fingerprint), now)
    if tally is None:
        tally = _count(session, scope, filters)
        memo.put((*person, tally.fingerprint), tally, tally.until)  # the fingerprint of the rows counted
    return tally, _token(scope, tally.fingerprint, unread)


def _count(session: Session, scope: _Scope, filters: list[TaskFilter | None]) -> _Tally:
    """Run the pass and add up its rows, one per step."""
    statement, params = count_query(scope, filters)
    rows = run(session, statement, params).all()
    size = len(_FINGERPRINT)
    columns = list(zip(*rows, strict=True)) if rows else [()] * (3 + size + len(filters))
    (element_ids, names, dues), parts, counts = columns[:3], columns[3:3 + size], columns[3 + size:]
    fingerprint = (max(part, default=0) if i == _MAXIMUM else sum(part) for i, part in enumerate(parts))
    steps = sorted(zip(element_ids, names, strict=True), key=lambda step: (step[1], step[0]))
    ahead = [due for due in dues if due is not None]
    return _Tally(counts=tuple(sum(column) for column in counts), steps=tuple(steps[:MAX_STEPS]),
                  fingerprint=tuple(int(value) for value in fingerprint),
                  until=min([scope.params["now"] + timedelta(seconds=MEMO_SECONDS), scope.params["tomorrow"], *ahead]))


def _check_person(session: Session, criteria: TaskFilter) -> None:
    if criteria.assignee not in ("", ME, UNASSIGNED) and session.scalar(
            select(User.id).where(User.username == criteria.assignee)) is None:
        raise InvalidForm({"assignee": "There is no such person."}, {"assignee": criteria.assignee})


def sidebar(session: Session, actor: User, *, scope: _Scope | None = None) -> list[FilterCount]:
    """The built-in filters, ``actor``'s teams and saved filters, with how many tasks each shows now."""
    return _sidebar(session, scope or _Scope(session, actor))[0]


def _role_names(session: Session, scope: _Scope) -> dict[str, str]:
    """Key → name of the person's roles and of the roles they manage."""
    return dict(session.execute(select(Role.key, Role.name).where(Role.key.in_(sorted(scope.roles)))).all())


def _sidebar(session: Session, scope: _Scope,
             names: dict[str, str] | None = None) -> tuple[list[FilterCount], _Tally, str]:
    """The sidebar's entries, the pass they were counted in, and its change token; ``names``: the roles'."""
    saved = list(session.scalars(select(SavedFilter).where(SavedFilter.user_id == scope.actor.id)
                                 .order_by(SavedFilter.name)))
    entries: list[tuple[str, TaskFilter | None, str, int | None]] = [
        (b.label, b.criteria, b.key, None) for b in BUILT_IN]
    if scope.managed:  # a manager's teams, one entry per managed role
        names = names if names is not None else _role_names(session, scope)
        entries += [(f"Team: {names[key]}", TaskFilter(role=key), f"{TEAM}{key}", None)
                    for key in sorted(scope.managed, key=lambda k: names[k])]
    for row in saved:
        try:
            entries.append((row.name, TaskFilter.parse(row.criteria), "", row.id))
        except InvalidForm:  # saved with choices this version no longer has: listed, counted as nothing
            entries.append((row.name, None, "", row.id))
    tally, token = _tally(session, scope, [criteria for _, criteria, _, _ in entries])
    return [FilterCount(label, n, criteria or TaskFilter(), key, saved_id)
            for (label, criteria, key, saved_id), n in zip(entries, tally.counts, strict=True)], tally, token


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
    return result


def filtered_inbox(session: Session, actor: User, criteria: TaskFilter, *, page: int = 1, selected: str = "",
                   page_size: int = PAGE_SIZE, with_rows: bool = True, scope: _Scope | None = None) -> FilteredInbox:
    """A page of the tasks ``criteria`` shows to ``actor``, the sidebar with counts, the form's choices, and
    the change token of the tasks counted."""
    scope = scope or _Scope(session, actor)
    rows, total = [], 0
    if with_rows:
        _check_person(session, criteria)
        tasks, params = tasks_query(scope, criteria)
        page = max(1, page)
        rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size), params).all()
        if not rows and page > 1:  # past the end: the last page
            total = session.scalar(select(func.count()).select_from(tasks.subquery()), params) or 0
            page = max(1, -(-total // page_size))
            rows = session.execute(page_query(tasks, page_size, (page - 1) * page_size), params).all()
        total = rows[0][-1] if rows else 0
    names = _role_names(session, scope)
    entries, tally, token = _sidebar(session, scope, names)
    return FilteredInbox(
        criteria=criteria, rows=[InboxRow(*row[:-1]) for row in rows], total=total, page=page if with_rows else 1,
        sidebar=entries, selected=selected, page_size=page_size, managed=scope.managed, token=token,
        **choices(session, scope, tally.steps, names))


def choices(session: Session, scope: _Scope, steps: tuple[tuple[str, str], ...],
            names: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """The filter form's options: processes, the ``steps`` now open for the person, their roles (``names``:
    key → name), colleagues."""
    processes = session.execute(select(Process.key, Process.title).order_by(Process.title)).all()
    people = people_of(session, scope.roles)
    return {"processes": [tuple(r) for r in processes], "steps": list(steps),
            "roles": sorted(names.items(), key=lambda role: (role[1], role[0])), "people": people}


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
    each, follow-up dates reached, priorities, due dates, and their unread notifications. It changes when
    a task arrives, leaves, is claimed, handed on or rescheduled; the inbox polls it (one indexed
    aggregate) instead of the page."""
    scope = scope or _Scope(session, actor)
    return _token(scope, *_poll(session, scope))


def _token(scope: _Scope, fingerprint: tuple[int, ...], unread: int) -> str:
    text = ":".join(str(v) for v in (*fingerprint, unread, len(scope.roles)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _poll(session: Session, scope: _Scope) -> tuple[tuple[int, ...], int]:
    """The fingerprint of the visible open tasks and the number of unread notifications."""
    *fingerprint, unread = run(session, _fingerprint(bool(scope.roles)), scope.params).one()
    return tuple(int(value) for value in fingerprint), int(unread)


@cache
def _fingerprint(with_roles: bool) -> Select:
    """:data:`_FINGERPRINT` of the visible open tasks, and the person's unread notifications."""
    unread = (select(func.count()).select_from(Notification)
              .where(Notification.user_id == _ME, Notification.read_at.is_(None)).scalar_subquery())
    return _visible_tasks(with_roles, *_FINGERPRINT, unread, with_cases=False)
