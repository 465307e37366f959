"""The published versions of a process: listing them, looking one up, and what changed between two.

The diff compares two diagrams element by element (element ids tie them together) and lists the
settings a process owner would recognise (names, conditions, roles, form fields, timers); the
layout is left out. The modeler's diff page marks the changes on both diagrams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from . import definitions as defs
from .db import Event, HumanTask, Process, ProcessDefinition, ProcessInstance, User
from .definitions import BPMN_NS, NS
from .errors import NotAllowed, NotFound
from .forms import CAMUNDA_NS
from .permissions import can
from .validation import local_name
from .vocabulary import Permission

# --- the versions ---------------------------------------------------------------------------


def versions_of(session: Session, process_key: str) -> list[ProcessDefinition]:
    """Every published version of ``process_key``, newest first."""
    query = (select(ProcessDefinition).where(ProcessDefinition.process_key == process_key)
             .order_by(ProcessDefinition.version.desc()))
    return list(session.scalars(query))


def definition_by_version(session: Session, process_key: str, version: int) -> ProcessDefinition:
    """Version ``version`` of ``process_key``.

    :raises NotFound: the process has no such version
    """
    definition = session.scalars(select(ProcessDefinition).where(
        ProcessDefinition.process_key == process_key, ProcessDefinition.version == version)).first()
    if definition is None:
        raise NotFound(f"“{process_key}” has no version {version}.")
    return definition


def downloadable_definition(session: Session, actor: User, definition_id: int) -> ProcessDefinition:
    """A published version, for ``actor`` to download as its BPMN file (the diagram shows every
    condition, script and role of the process, so not every employee reads every one).

    Allowed: who may start the process or holds its owner role; holders of ``model``, ``audit``
    or ``read_all_cases``; who took part in a case of this version (started it, acted in it, or
    was assigned one of its tasks); who holds a candidate role of one of its user tasks.

    :raises NotFound: there is no such version
    :raises NotAllowed: none of the above holds for ``actor``
    """
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(f"There is no diagram version {definition_id}.")
    if any(can(actor, p) for p in (Permission.MODEL, Permission.AUDIT, Permission.READ_ALL_CASES)):
        return definition
    process = session.get(Process, definition.process_key)
    if process is not None and actor.role_keys & {*(process.starter_roles or []), process.owner_role}:
        return definition
    tasks = defs.parsed(session, definition).user_tasks.values()
    if any(actor.role_keys.intersection(task.candidate_roles) for task in tasks):
        return definition
    cases = select(ProcessInstance.id).where(ProcessInstance.definition_id == definition.id)
    took_part = select(ProcessInstance.id).where(
        ProcessInstance.definition_id == definition.id, ProcessInstance.started_by_id == actor.id).union_all(
        select(Event.instance_id).where(Event.actor_id == actor.id, Event.instance_id.in_(cases)),
        select(HumanTask.instance_id).where(HumanTask.instance_id.in_(cases), or_(
            HumanTask.assignee_id == actor.id, HumanTask.completed_by_id == actor.id)))
    if session.scalar(select(exists(took_part))):
        return definition
    raise NotAllowed("Only people who work with this process may download its diagram.")


def downloadable_version(session: Session, actor: User, process_key: str, version: int) -> ProcessDefinition:
    """Version ``version`` of ``process_key`` for ``actor`` to download, by the rule of
    :func:`downloadable_definition`.

    :raises NotFound: no such version
    :raises NotAllowed: ``actor`` does not work with the process
    """
    return downloadable_definition(session, actor, definition_by_version(session, process_key, version).id)


# --- diff -----------------------------------------------------------------------------------


@dataclass
class PropertyChange:
    name: str
    before: str | None
    after: str | None


@dataclass
class ElementChange:
    element_id: str
    kind: str  # added, removed, changed
    type: str
    name: str
    properties: list[PropertyChange] = field(default_factory=list)


@dataclass
class DefinitionDiff:
    old: ProcessDefinition
    new: ProcessDefinition
    changes: list[ElementChange]

    def ids(self, kind: str) -> list[str]:
        return [c.element_id for c in self.changes if c.kind == kind]


def _describe_field(node: etree._Element) -> str:
    parts = [node.get("type") or "string", node.get("label") or ""]
    if node.get("defaultValue"):
        parts.append(f"default {node.get('defaultValue')}")
    options = [v.get("id") or "" for v in node.iterfind("camunda:value", NS)]
    if options:
        parts.append("options " + "/".join(options))
    constraints = [c.get("name", "") + (f"={c.get('config')}" if c.get("config") else "")
                   for c in node.iterfind("camunda:validation/camunda:constraint", NS)]
    if constraints:
        parts.append(", ".join(constraints))
    props = [f"{p.get('id')}={p.get('value')}" for p in node.iterfind("camunda:properties/camunda:property", NS)]
    if props:
        parts.append(", ".join(props))
    return " · ".join(p for p in parts if p)


def _compact(node: etree._Element) -> str:
    return " ".join(etree.tostring(node, encoding="unicode", with_tail=False).split())


def _qualified(name: str) -> str:
    qname = etree.QName(name)
    prefix = {CAMUNDA_NS: "camunda:", "http://www.w3.org/2001/XMLSchema-instance": "xsi:"}.get(qname.namespace or "")
    return f"{prefix or ''}{qname.localname}" if qname.namespace else qname.localname


def _element_properties(node: etree._Element, lanes: dict[str, str]) -> dict[str, str]:
    """What a process owner would call the settings of one element (layout left out)."""
    props: dict[str, str] = {}
    for name, value in node.attrib.items():
        if name != "id":
            props[_qualified(name)] = value
    if node.get("id") in lanes:
        props["lane"] = lanes[node.get("id")]
    for child in node:
        kind = local_name(child)
        if kind in ("conditionExpression", "documentation", "script", "text"):
            props[{"conditionExpression": "condition"}.get(kind, kind)] = (child.text or "").strip()
        elif kind.endswith("EventDefinition"):
            props["event"] = _compact(child)
        elif kind in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics"):
            props["loop"] = _compact(child)
        elif kind == "extensionElements":
            for ext in child:
                if local_name(ext) == "formData":
                    for form_field in ext.iterfind("camunda:formField", NS):
                        props[f"form field “{form_field.get('id')}”"] = _describe_field(form_field)
                elif isinstance(ext.tag, str):
                    props[_qualified(ext.tag)] = _compact(ext)
    return props


def _elements(xml: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """id → (type, name, properties) of every BPMN element of the processes and collaborations."""
    root = defs.parse_xml(xml)
    lanes = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            lanes[(ref.text or "").strip()] = lane.get("name") or lane.get("id") or ""
    found = {}
    for top in list(root.iterfind("bpmn:process", NS)) + list(root.iterfind("bpmn:collaboration", NS)):
        for node in top.iter(f"{{{BPMN_NS}}}*"):
            kind = local_name(node)
            if not node.get("id") or kind in ("laneSet", "conditionExpression", "documentation"):
                continue
            if kind.endswith("EventDefinition") or kind.endswith("LoopCharacteristics"):
                continue
            found[node.get("id")] = (kind, node.get("name") or "", _element_properties(node, lanes))
    return found


def diff_xml(old_xml: str, new_xml: str) -> list[ElementChange]:
    """Elements added, removed and changed between two diagrams; element ids tie them together."""
    old, new = _elements(old_xml), _elements(new_xml)
    changes = []
    for element_id, (kind, name, props) in new.items():
        if element_id not in old:
            changes.append(ElementChange(element_id, "added", kind, name))
            continue
        old_kind, _old_name, old_props = old[element_id]
        if old_kind != kind:
            props = {**props, "type": kind}
            old_props = {**old_props, "type": old_kind}
        differences = [PropertyChange(key, old_props.get(key), props.get(key))
                       for key in sorted(set(old_props) | set(props)) if old_props.get(key) != props.get(key)]
        if differences:
            changes.append(ElementChange(element_id, "changed", kind, name or _old_name, differences))
    for element_id, (kind, name, _props) in old.items():
        if element_id not in new:
            changes.append(ElementChange(element_id, "removed", kind, name))
    order = {"removed": 0, "changed": 1, "added": 2}
    return sorted(changes, key=lambda c: (order[c.kind], c.type, c.element_id))


def diff_versions(session: Session, process_key: str, old_version: int, new_version: int) -> DefinitionDiff:
    """What changed from one version of a process to another."""
    old = definition_by_version(session, process_key, old_version)
    new = definition_by_version(session, process_key, new_version)
    return DefinitionDiff(old, new, diff_xml(old.xml, new.xml))
