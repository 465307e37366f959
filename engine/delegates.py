"""Java delegate mappings: the Java code that Camunda 7 diagrams name on service tasks (``camunda:class``,
``camunda:delegateExpression``, ``camunda:expression``), mapped by an administrator to a deptflow external task
topic. The service task then waits for a worker of that topic (:mod:`engine.external_tasks`), which does the
work the Java class did and completes the task over the API, as for ``camunda:type="external"``.

Like group mappings (:mod:`engine.groups`), the mappings travel with the roles into parsing
(:attr:`engine.definitions.Roles.delegates`) and are part of the definition cache's key: a diagram refused for an
unmapped delegate publishes once it is mapped, and cases reach the mapped topic from their next step. An
external task row already waiting keeps its topic. Every change is audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from . import definitions as defs
from .clock import utcnow
from .db import DelegateMapping, User
from .definitions import BPMN_NS
from .errors import Conflict, InvalidDefinition, InvalidForm, NotFound
from .groups import _diagrams
from .permissions import require
from .vocabulary import EventKind, Permission

MAX_DELEGATE_LENGTH = 300
MAX_TOPIC_LENGTH = 200


def _require_admin(actor: User | None) -> None:
    """``actor`` None is the operator at the console."""
    if actor is not None:
        require(actor, Permission.ADMINISTER, "Only administrators map Java delegates to topics.")


@dataclass(frozen=True)
class DelegateUse:
    """A service task of a diagram that names a Java delegate."""

    delegate: str
    #: class, delegateExpression or expression
    attribute: str
    process_key: str
    #: "version 3" or "draft #12"
    source: str
    element_id: str
    element_name: str


def delegate_uses(xml: str, process_key: str, source: str) -> list[DelegateUse]:
    """The Java delegates the service tasks of a diagram's executable processes name. A file that cannot be
    read names none."""
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition:
        return []
    uses = []
    for process in root.iterfind("bpmn:process", defs.NS):
        if not defs.is_executable(process):
            continue
        for node in process.iter(f"{{{BPMN_NS}}}serviceTask"):
            found = defs.delegate_of(node)
            if found is not None:
                element_id = node.get("id") or ""
                uses.append(DelegateUse(found[1], found[0], process_key, source, element_id,
                                        node.get("name") or element_id))
    return uses


@dataclass
class MappedDelegate:
    mapping: DelegateMapping
    uses: list[DelegateUse] = field(default_factory=list)


@dataclass
class DelegateOverview:
    #: delegate → the service tasks that name it, for delegates that are not mapped
    unmapped: dict[str, list[DelegateUse]]
    mapped: list[MappedDelegate]


def overview(session: Session) -> DelegateOverview:
    """The unmapped Java delegates of the published diagrams and drafts with the tasks that name them, and the
    mapped ones with their topic and where they are used."""
    mapped = [MappedDelegate(m) for m in session.scalars(select(DelegateMapping).order_by(DelegateMapping.delegate))]
    by_delegate = {m.mapping.delegate: m for m in mapped}
    unmapped: dict[str, list[DelegateUse]] = {}
    for xml, process_key, source in _diagrams(session):
        for use in delegate_uses(xml, process_key, source):
            found = by_delegate.get(use.delegate)
            if found is not None:
                found.uses.append(use)
            else:
                unmapped.setdefault(use.delegate, []).append(use)
    return DelegateOverview(dict(sorted(unmapped.items())), mapped)


def _text(value: str, name: str, limit: int, errors: dict[str, str], empty: str) -> str:
    value = (value or "").strip()
    if not value:
        errors[name] = empty
    elif len(value) > limit:
        errors[name] = f"Use at most {limit} characters."
    elif any(unicodedata.category(c).startswith("C") for c in value):
        errors[name] = "No control characters, please."
    return value


def map_delegate(session: Session, actor: User | None, delegate: str, topic: str) -> DelegateMapping:
    """Map a Java delegate (as the diagram names it: a class name or a ``${…}`` expression) to an external task
    topic, or an already mapped one to another topic.

    :raises InvalidForm: the delegate or the topic is empty, too long or has control characters
    """
    _require_admin(actor)
    errors: dict[str, str] = {}
    delegate = _text(delegate, "delegate", MAX_DELEGATE_LENGTH, errors,
                     "Name the Java class or delegate expression as the diagram does.")
    topic = _text(topic, "topic", MAX_TOPIC_LENGTH, errors, "Name the topic its workers fetch.")
    if errors:
        raise InvalidForm(errors, {"delegate": delegate, "topic": topic})
    mapping = session.get(DelegateMapping, delegate)
    before = mapping.topic if mapping is not None else None
    if mapping is None:
        mapping = DelegateMapping(delegate=delegate, topic=topic)
        session.add(mapping)
    elif before == topic:
        return mapping
    mapping.topic = topic
    mapping.mapped_by_id = actor.id if actor is not None else None
    mapping.mapped_at = utcnow()
    session.flush()  # known_roles reads through the connection: the next parse sees it
    audit.record(session, EventKind.DELEGATE_MAPPED, actor=actor, delegate=delegate, topic=topic, before=before)
    return mapping


def unmap_delegate(session: Session, actor: User | None, delegate: str) -> DelegateMapping:
    """Remove a delegate's mapping, when no published process version names it: its cases would reach the
    service task and wait there for no topic (mapping it to another topic is the way to move its work).

    :raises NotFound: the delegate is not mapped
    :raises Conflict: the latest published version of a process names it
    """
    _require_admin(actor)
    delegate = (delegate or "").strip()[:MAX_DELEGATE_LENGTH]
    mapping = session.get(DelegateMapping, delegate)
    if mapping is None:
        raise NotFound(f"The Java delegate “{delegate}” is not mapped.")
    used = sorted({f"{u.process_key} ({u.source})" for xml, key, source in _diagrams(session)
                   if source.startswith("version") for u in delegate_uses(xml, key, source) if u.delegate == delegate})
    if used:
        raise Conflict(f"“{delegate}” is used by {', '.join(used)}: its cases would wait at the task for no worker. "
                       "Map it to another topic instead, or publish versions without it first.")
    session.delete(mapping)
    session.flush()
    audit.record(session, EventKind.DELEGATE_UNMAPPED, actor=actor, delegate=delegate, topic=mapping.topic)
    return mapping
