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

from collections.abc import Iterator

from lxml import etree
from sqlalchemy.orm import Session

from . import definitions as defs
from . import mappings
from .db import DelegateMapping, User
from .definitions import BPMN_NS
from .errors import Conflict, InvalidForm
from .vocabulary import EventKind

MAX_DELEGATE_LENGTH = 300
MAX_TOPIC_LENGTH = 200


def _named(root: etree._Element, process: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    """The Java delegates a process's service tasks name."""
    for node in process.iter(f"{{{BPMN_NS}}}serviceTask"):
        found = defs.delegate_of(node)
        if found is not None:
            yield node, found[1]


KIND = mappings.Kind(model=DelegateMapping, name_column="delegate", target_column="topic",
                     mapped_event=EventKind.DELEGATE_MAPPED, unmapped_event=EventKind.DELEGATE_UNMAPPED,
                     name_field="delegate", target_field="topic", noun="Java delegate",
                     admin_only="Only administrators map Java delegates to topics.", named=_named)


def overview(session: Session) -> mappings.Overview:
    """The unmapped Java delegates of the published diagrams and drafts with the tasks that name them, and the
    mapped ones with their topic and where they are used."""
    return mappings.overview(session, KIND)


def map_delegate(session: Session, actor: User | None, delegate: str, topic: str) -> DelegateMapping:
    """Map a Java delegate (as the diagram names it: a class name or a ``${…}`` expression) to an external task
    topic, or an already mapped one to another topic.

    :raises InvalidForm: the delegate or the topic is empty, too long or has control characters
    """
    mappings.require_admin(actor, KIND)
    errors: dict[str, str] = {}
    delegate = mappings.checked_text(delegate, "delegate", MAX_DELEGATE_LENGTH, errors,
                                     "Name the Java class or delegate expression as the diagram does.")
    topic = mappings.checked_text(topic, "topic", MAX_TOPIC_LENGTH, errors, "Name the topic its workers fetch.")
    if errors:
        raise InvalidForm(errors, {"delegate": delegate, "topic": topic})
    return mappings.save(session, actor, KIND, delegate, topic)


def unmap_delegate(session: Session, actor: User | None, delegate: str) -> DelegateMapping:
    """Remove a delegate's mapping, when no published process version names it: its cases would reach the
    service task and wait there for no topic (mapping it to another topic is the way to move its work).

    :raises NotFound: the delegate is not mapped
    :raises Conflict: the latest published version of a process names it
    """
    mappings.require_admin(actor, KIND)
    delegate = (delegate or "").strip()[:MAX_DELEGATE_LENGTH]
    mapping = mappings.existing(session, KIND, delegate)
    used = sorted({f"{u.process_key} ({u.source})" for xml, key, source in mappings.diagrams(session)
                   if source.startswith("version")
                   for u in mappings.uses(KIND, xml, key, source) if u.name == delegate})
    if used:
        raise Conflict(f"“{delegate}” is used by {', '.join(used)}: its cases would wait at the task for no worker. "
                       "Map it to another topic instead, or publish versions without it first.")
    return mappings.remove(session, actor, KIND, mapping)
