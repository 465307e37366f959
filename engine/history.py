"""What auditors read: instance search, one instance's full history, and exports.

Search reads only indexed instance columns (and the event log for participants), never
serialized workflows. The history of one instance does load its workflow and its archived
tasks (long trees are compacted, see :func:`engine.persistence.compact`), to know exactly which
elements completed and which flows were taken.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from . import audit, core, persistence
from . import definitions as defs
from .db import Event, HumanTask, ProcessDefinition, ProcessInstance, User
from .errors import InvalidForm
from .permissions import require
from .read_models import field_choices, field_labels, visible_case
from .vocabulary import InstanceStatus, Permission

STATUSES = tuple(InstanceStatus)
MAX_EXPORT_INSTANCES = 10_000


def check_auditor(actor: User) -> None:
    require(actor, Permission.AUDIT, "Only auditors may search all cases.")


# --- search ---------------------------------------------------------------------------


@dataclass
class InstanceFilter:
    process_key: str | None = None
    version: int | None = None
    status: str | None = None
    started_from: date | None = None
    started_to: date | None = None
    starter: str | None = None
    participant: str | None = None
    business_key: str | None = None
    field: str | None = None
    value: str | None = None

    @classmethod
    def parse(cls, args: dict[str, str]) -> InstanceFilter:
        """Read filters from query-string values; bad ones raise :class:`InvalidForm` per field."""
        raw = {k: (v or "").strip() for k, v in args.items()}
        errors: dict[str, str] = {}
        found = cls()
        for name in ("process_key", "starter", "participant", "business_key", "value"):
            setattr(found, name, raw.get(name) or None)
        if raw.get("status"):
            if raw["status"] in STATUSES:
                found.status = raw["status"]
            else:
                errors["status"] = f"Choose one of: {', '.join(STATUSES)}."
        if raw.get("version"):
            if raw["version"].isascii() and raw["version"].isdigit() and len(raw["version"]) < 10:
                found.version = int(raw["version"])
            else:
                errors["version"] = "Enter a version number."
        for name in ("started_from", "started_to"):
            if raw.get(name):
                try:
                    setattr(found, name, date.fromisoformat(raw[name]))
                except ValueError:
                    errors[name] = "Enter a date as YYYY-MM-DD."
        if raw.get("field"):
            if raw["field"].isidentifier():
                found.field = raw["field"]
            else:
                errors["field"] = "Enter a field id (letters, digits, _)."
        if found.field and found.value is None:
            errors["value"] = "Enter the value to look for."
        if errors:
            raise InvalidForm(errors, {k: v for k, v in raw.items() if k != "page"})
        return found

    def query(self) -> Select:
        query = select(ProcessInstance)
        if self.process_key:
            query = query.where(ProcessInstance.process_key == self.process_key)
        if self.version is not None:
            query = query.join(ProcessDefinition, ProcessDefinition.id == ProcessInstance.definition_id).where(
                ProcessDefinition.version == self.version
            )
        if self.status:
            query = query.where(ProcessInstance.status == self.status)
        if self.started_from:
            query = query.where(ProcessInstance.started_at >= datetime.combine(self.started_from, datetime.min.time()))
        if self.started_to:
            end = datetime.combine(self.started_to + timedelta(days=1), datetime.min.time())
            query = query.where(ProcessInstance.started_at < end)
        if self.starter:
            query = query.where(ProcessInstance.started_by_id.in_(select(User.id).where(User.username == self.starter)))
        if self.participant:
            took_part = exists().where(
                Event.instance_id == ProcessInstance.id,
                Event.actor_id.in_(select(User.id).where(User.username == self.participant)),
            )
            query = query.where(took_part)
        if self.business_key:
            query = query.where(ProcessInstance.business_key == self.business_key)
        if self.field:
            query = query.where(ProcessInstance.data[self.field].as_string() == self.value)
        return query


@dataclass
class SearchPage:
    rows: list[ProcessInstance]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


def search_instances(
    session: Session, actor: User, filters: InstanceFilter, page: int = 1, per_page: int = 50
) -> SearchPage:
    """One page of matching instances, newest first (a stable order: start time, then id)."""
    check_auditor(actor)
    query = filters.query()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    rows = session.scalars(
        query.order_by(ProcessInstance.started_at.desc(), ProcessInstance.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return SearchPage(list(rows), page, per_page, total)


# --- one instance's history ------------------------------------------------------------


@dataclass
class TimelineEntry:
    event: Event
    since_previous: timedelta | None


@dataclass
class History:
    instance: ProcessInstance
    definition: ProcessDefinition
    timeline: list[TimelineEntry]
    tasks: list[HumanTask]
    labels: dict[str, str]
    choices: dict[str, dict[str, str]]
    completed_elements: list[str] = field(default_factory=list)
    active_elements: list[str] = field(default_factory=list)
    taken_flows: list[str] = field(default_factory=list)
    #: the case's own log checked against its hashes when the page was made
    chain: audit.Verification | None = None

    @property
    def duration(self) -> timedelta | None:
        end = self.instance.ended_at
        return end - self.instance.started_at if end else None


def instance_history(session: Session, actor: User, instance_id: int) -> History:
    """The complete record of one instance, for auditors and the case's participants."""
    case = visible_case(session, actor, instance_id)
    instance, tasks, events, parsed = case.instance, case.tasks, case.events, case.parsed
    timeline, previous = [], None
    for event in events:
        timeline.append(TimelineEntry(event, event.at - previous if previous else None))
        previous = event.at
    history = History(instance, instance.definition, timeline, tasks, field_labels(parsed),
                      field_choices(parsed, instance),
                      chain=audit.verify_case(instance, events, core.of(session).audit_signer))
    workflow = core.of(session).load(instance.state, parsed)
    _trace_path(history, _path_nodes(workflow, persistence.archived_tasks(session, instance_id)), parsed)
    return history


@dataclass(frozen=True, slots=True)
class _PathNode:
    """One SpiffWorkflow task, live or archived: all the path tracing needs of it."""

    element: str | None
    parent: str | None
    state: int


def _path_nodes(workflow: Any, archived: list[dict[str, Any]]) -> dict[str, _PathNode]:
    """Task id → node over the live tree and the archive (:func:`engine.persistence.compact` compacts long trees).

    A task cut loose as a root has no parent of its own; the archived task listing it as a child is its parent.
    """
    parent_of = {child: dct["id"] for dct in archived for child in dct["children"]}
    true_parent = persistence.TRUE_PARENT  # compaction relinks a kept task onto the spine; its path runs here
    nodes = {dct["id"]: _PathNode(dct.get("bpmn_id"), (dct.get("internal_data") or {}).get(true_parent)
                                  or dct["parent"] or parent_of.get(dct["id"]), dct["state"])
             for dct in archived}
    for task in workflow.get_tasks():
        task_id = str(task.id)
        parent = task.internal_data.get(true_parent) or (str(task._parent) if task._parent else parent_of.get(task_id))
        nodes[task_id] = _PathNode(getattr(task.task_spec, "bpmn_id", None), parent, task.state)
    return nodes


def _trace_path(history: History, nodes: dict[str, _PathNode], parsed: defs.ParsedDefinition) -> None:
    completed, active, flows = [], [], set()
    for node in nodes.values():
        if not node.element:
            continue
        if node.state == TaskState.COMPLETED:
            completed.append(node.element)
        elif node.state in (TaskState.READY, TaskState.WAITING, TaskState.STARTED):
            active.append(node.element)
        else:
            continue
        parent = _bpmn_parent(nodes, node)
        if parent and (parent, node.element) in parsed.flows:
            flows.add(parsed.flows[(parent, node.element)][0])
    history.completed_elements = sorted(set(completed))
    history.active_elements = sorted(set(active))
    history.taken_flows = sorted(flows)


def _bpmn_parent(nodes: dict[str, _PathNode], node: _PathNode) -> str | None:
    """The nearest ancestor that is a BPMN element: SpiffWorkflow puts helper steps (e.g. the split
    in front of an activity with boundary events) between a gateway and the activity."""
    ancestor = nodes.get(node.parent) if node.parent else None
    while ancestor is not None:
        if ancestor.element:
            return ancestor.element
        ancestor = nodes.get(ancestor.parent) if ancestor.parent else None
    return None


# --- exports ---------------------------------------------------------------------------


EVENT_FIELDS = ("chain", "seq", "at", "kind", "instance_id", "actor_id", "task_id", "element_id", "data",
                "prev_hash", "hash")
INSTANCE_FIELDS = ("id", "process_key", "version", "title", "business_key", "status", "started_by", "started_at",
                   "ended_at")


def _event_dict(event: Event, usernames: dict[int, str]) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in EVENT_FIELDS}
    row["at"] = event.at.isoformat(timespec="microseconds")
    row["actor"] = usernames.get(event.actor_id) if event.actor_id else None
    return row


def _instance_dict(instance: ProcessInstance) -> dict[str, Any]:
    return {
        "id": instance.id,
        "process_key": instance.process_key,
        "version": instance.definition.version,
        "definition_sha256": instance.definition.sha256,
        "title": instance.title,
        "business_key": instance.business_key,
        "status": instance.status,
        "started_by": instance.started_by.username,
        "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
    }


def _usernames(session: Session) -> dict[int, str]:
    return {user_id: name for user_id, name in session.execute(select(User.id, User.username))}


def export_instances(session: Session, actor: User, filters: InstanceFilter) -> list[dict[str, Any]]:
    """Every matching instance (up to 10,000) with its events and their chain hashes."""
    check_auditor(actor)
    instances = list(session.scalars(filters.query().order_by(ProcessInstance.id).limit(MAX_EXPORT_INSTANCES)))
    events_by_instance: dict[int, list[Event]] = {i.id: [] for i in instances}
    ids = list(events_by_instance)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for event in session.scalars(select(Event).where(Event.instance_id.in_(chunk)).order_by(Event.id)):
            events_by_instance[event.instance_id].append(event)
    usernames = _usernames(session)
    return [
        {**_instance_dict(i), "events": [_event_dict(e, usernames) for e in events_by_instance[i.id]]}
        for i in instances
    ]


def export_history(session: Session, actor: User, instance_id: int) -> dict[str, Any]:
    history = instance_history(session, actor, instance_id)
    usernames = _usernames(session)
    return {**_instance_dict(history.instance),
            "events": [_event_dict(entry.event, usernames) for entry in history.timeline]}


def to_json(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, indent=1, default=str)


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a leading single quote (OWASP's advice on CSV injection)."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(instances: list[dict[str, Any]]) -> str:
    """One row per event, with its instance's columns first (hashes included for re-verification).

    A text cell that a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return) gets a leading single quote (OWASP's advice on CSV injection).
    """

    out = io.StringIO()
    writer = csv.writer(out)
    header = [f"instance_{name}" for name in INSTANCE_FIELDS] + [*EVENT_FIELDS, "actor"]
    writer.writerow(header)
    for instance in instances:
        front = [instance.get(name) for name in INSTANCE_FIELDS]
        for event in instance["events"]:
            row = [json.dumps(event[name], ensure_ascii=False, sort_keys=True) if name == "data" else event[name]
                   for name in (*EVENT_FIELDS, "actor")]
            writer.writerow([csv_cell(value) for value in front + row])
    return out.getvalue()


# --- the event log, streamed ----------------------------------------------------------------

_events = Event.__table__
_EVENT_COLUMNS = [_events.c[name] for name in EVENT_FIELDS if name != "at"] + [_events.c.at, User.username]
#: rows fetched from the database at a time while an export streams
EXPORT_BATCH = 1000


def export_events(session: Session, actor: User, filters: InstanceFilter, *, instance_id: int | None = None,
                  since: date | None = None, until: date | None = None) -> Iterator[dict[str, Any]]:
    """The event log in the order it was written, as auditors download it to verify it elsewhere: every
    field an event's hash covers (see :func:`engine.audit.canonical`), its hash and the actor's username.

    Filtered by the cases the audit search finds (``filters``), one case, and the days the events
    happened (``since``/``until``, inclusive); without a case filter the whole log, events outside cases
    (logins, published diagrams: the global chain) included. The permission is checked now, the
    rows are read in batches of :data:`EXPORT_BATCH` as the caller iterates (an export never sits in
    memory as a whole).

    :raises NotAllowed: the actor is no auditor
    """
    check_auditor(actor)
    query = select(*_EVENT_COLUMNS).outerjoin(User, User.id == _events.c.actor_id)
    if filters != InstanceFilter():
        query = query.where(_events.c.instance_id.in_(filters.query().with_only_columns(ProcessInstance.id)))
    if instance_id is not None:
        query = query.where(_events.c.instance_id == instance_id)
    if since is not None:
        query = query.where(_events.c.at >= datetime.combine(since, time.min))
    if until is not None:
        query = query.where(_events.c.at <= datetime.combine(until, time.max))
    query = query.order_by(_events.c.id).execution_options(yield_per=EXPORT_BATCH)

    def rows() -> Iterator[dict[str, Any]]:
        for row in session.execute(query):
            event = {name: getattr(row, name) for name in EVENT_FIELDS}
            event["at"] = row.at.isoformat(timespec="microseconds")
            event["actor"] = row.username
            yield event

    return rows()


def to_json_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object a line (JSON Lines), as the events come."""
    for event in events:
        yield json.dumps(event, ensure_ascii=False, sort_keys=True, default=str) + "\n"


def to_csv_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header, then one CSV row an event (``data`` as JSON, cells neutralised as :func:`to_csv` does)."""
    out = io.StringIO()
    writer = csv.writer(out)
    columns = (*EVENT_FIELDS, "actor")
    for values in itertools.chain([columns], ((
            json.dumps(e[name], ensure_ascii=False, sort_keys=True) if name == "data" else e[name]
            for name in columns) for e in events)):
        writer.writerow([csv_cell(value) for value in values])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
