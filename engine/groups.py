"""Group mappings: the groups that diagrams name in lanes and ``camunda:candidateGroups`` (Camunda's
``accounting``, ``management``, ``sales``) and that are no role, mapped by an administrator to a role.

Parsing resolves a group through its mapping (:func:`engine.definitions.known_roles` carries them, and the
definition cache is keyed by them), so a diagram refused for unmapped groups publishes once they are mapped,
and new tasks go to the mapped role's queue. Tasks already created keep their roles: a mapping changes what
the next task gets, never a task that exists. Every change is audited.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, juel
from . import definitions as defs
from . import roles as role_ops
from .clock import utcnow
from .db import GroupMapping, Process, ProcessDraft, Role, User
from .definitions import BPMN_NS, CAMUNDA_NS
from .errors import InvalidDefinition, InvalidForm, NotFound
from .permissions import require
from .vocabulary import EventKind, Permission

MAX_GROUP_LENGTH = 200


def _require_admin(actor: User | None) -> None:
    """``actor`` None is the operator at the console."""
    if actor is not None:
        require(actor, Permission.ADMINISTER, "Only administrators map groups to roles.")


# --- what diagrams name ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupUse:
    """One element of a diagram that names a group."""

    group_id: str
    process_key: str
    #: "version 3" or "draft #12"
    source: str
    element_id: str
    element_name: str


def group_uses(xml: str, process_key: str, source: str) -> list[GroupUse]:
    """The groups a diagram's user and manual tasks name: their candidate groups, else their lane (as
    :func:`engine.definitions.parse_definitions` reads them). A file that cannot be read names none."""
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition:
        return []
    lanes = defs._lanes_by_node(root)
    uses = []
    for process in root.iterfind("bpmn:process", defs.NS):
        if not defs.is_executable(process):
            continue
        for node in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
            element_id = node.get("id") or ""
            entries = defs.list_entries(node.get(f"{{{CAMUNDA_NS}}}candidateGroups") or "")
            # a ${…} entry names its groups only when the task runs: they are resolved then (an incident if unmapped)
            named = [g for g in entries if not juel.is_expression(g)]
            lane = lanes.get(element_id)
            for group in named or ([lane] if lane and not entries else []):
                uses.append(GroupUse(group, process_key, source, element_id, node.get("name") or element_id))
    return uses


def _diagrams(session: Session) -> list[tuple[str, str, str]]:
    """(xml, process key, source) of the latest published version of every process and of the newest
    draft of every process key (a new process may exist only as drafts)."""
    diagrams = []
    for process in session.scalars(select(Process).order_by(Process.key)):
        definition = defs.latest_definition(session, process.key, required=False)
        if definition is not None:
            diagrams.append((definition.xml, process.key, f"version {definition.version}"))
    newest = (select(func.max(ProcessDraft.id).label("id")).group_by(ProcessDraft.process_key).subquery())
    for draft in session.scalars(select(ProcessDraft).join(newest, ProcessDraft.id == newest.c.id)
                                 .order_by(ProcessDraft.process_key)):
        diagrams.append((draft.xml, draft.process_key, f"draft #{draft.id}"))
    return diagrams


def _is_role(group: str, roles: dict[str, str]) -> bool:
    """Whether a group names a role itself (by key, or as a lane by key or display name)."""
    return group in roles or defs._role_for_lane(group, dict(roles)) is not None  # a plain dict: no mappings


@dataclass
class MappedGroup:
    mapping: GroupMapping
    role_name: str
    uses: list[GroupUse] = field(default_factory=list)


@dataclass
class GroupOverview:
    #: group id → the elements that name it, for groups that are neither a role nor mapped
    unmapped: dict[str, list[GroupUse]]
    mapped: list[MappedGroup]


def overview(session: Session) -> GroupOverview:
    """The unmapped groups of the published diagrams and drafts with the elements that name them, and the
    mapped groups with the role they go to and where they are used."""
    roles = defs.known_roles(session)
    mappings = list(session.scalars(select(GroupMapping).order_by(func.lower(GroupMapping.group_id))))
    mapped = [MappedGroup(m, roles.get(m.role_key, m.role_key)) for m in mappings]
    by_key = {defs.group_key(m.mapping.group_id): m for m in mapped}
    unmapped: dict[str, list[GroupUse]] = {}
    for xml, process_key, source in _diagrams(session):
        for use in group_uses(xml, process_key, source):
            if _is_role(use.group_id, roles):
                continue
            found = by_key.get(defs.group_key(use.group_id))
            if found is not None:
                found.uses.append(use)
            else:
                unmapped.setdefault(use.group_id, []).append(use)
    return GroupOverview(dict(sorted(unmapped.items(), key=lambda item: item[0].lower())), mapped)


# --- changes ---------------------------------------------------------------------------------------


def _find(session: Session, group_id: str) -> GroupMapping | None:
    """The mapping of ``group_id`` as lanes find it (case, spaces and ``_`` do not count)."""
    wanted = defs.group_key(group_id)
    return next((m for m in session.scalars(select(GroupMapping)) if defs.group_key(m.group_id) == wanted), None)


def _check_group(session: Session, group_id: str, errors: dict[str, str]) -> str:
    group_id = (group_id or "").strip()
    if not group_id:
        errors["group"] = "Name the group as the diagram does (a candidate group or a lane)."
    elif len(group_id) > MAX_GROUP_LENGTH:
        errors["group"] = f"Use at most {MAX_GROUP_LENGTH} characters."
    elif any(unicodedata.category(c).startswith("C") for c in group_id):
        errors["group"] = "A group id has no control characters."
    elif _is_role(group_id, defs.known_roles(session)):
        errors["group"] = f"“{group_id}” is a role already: diagrams that name it need no mapping."
    return group_id


def map_group(session: Session, actor: User | None, group_id: str, role_key: str) -> GroupMapping:
    """Map a group to an existing active role, or map an already mapped group to another role.

    :raises InvalidForm: the group id is empty, longer than :data:`MAX_GROUP_LENGTH`, has control characters
        or is a role itself; the role does not exist or is deactivated
    """
    _require_admin(actor)
    errors: dict[str, str] = {}
    group_id = _check_group(session, group_id, errors)
    role_key = (role_key or "").strip()
    values = {"group": group_id, "role": role_key}
    role = session.get(Role, role_key) if role_key else None
    if role is None or not role.active:
        errors["role"] = f"There is no active role “{role_key}”." if role_key else "Choose a role."
    if errors:
        raise InvalidForm(errors, values)
    return _save(session, actor, group_id, role_key)


def _save(session: Session, actor: User | None, group_id: str, role_key: str) -> GroupMapping:
    mapping = _find(session, group_id)
    before = mapping.role_key if mapping is not None else None
    if mapping is None:
        mapping = GroupMapping(group_id=group_id, role_key=role_key)
        session.add(mapping)
    elif before == role_key:
        return mapping
    mapping.role_key = role_key
    mapping.mapped_by_id = actor.id if actor is not None else None
    mapping.mapped_at = utcnow()
    session.flush()  # known_roles reads through the connection: the next parse sees it
    audit.record(session, EventKind.GROUP_MAPPED, actor=actor, group=mapping.group_id, role=role_key,
                 before=before)
    return mapping


def map_group_to_new_role(session: Session, actor: User | None, group_id: str, key: str, name: str) -> GroupMapping:
    """Create a role for a group and map the group to it, in one step (both audited).

    :raises InvalidForm: what :func:`map_group` and :func:`engine.roles.create_role` refuse, together
    """
    _require_admin(actor)
    errors: dict[str, str] = {}
    group_id = _check_group(session, group_id, errors)
    try:
        role_ops.create_role(session, actor, key, name)
    except InvalidForm as exc:
        raise InvalidForm({**errors, **exc.errors}, {"group": group_id, **exc.values}) from None
    if errors:
        raise InvalidForm(errors, {"group": group_id, "key": key.strip(), "name": name})
    # the new role may be named like the lane (then the lane finds it by itself): the mapping says so anyway
    return _save(session, actor, group_id, key.strip())


def unmap_group(session: Session, actor: User | None, group_id: str) -> GroupMapping:
    """Remove a group's mapping. Open tasks keep their roles; tasks created from now on no longer find
    the role (a published diagram that names the group lists it as unmapped again).

    :raises NotFound: the group is not mapped
    """
    _require_admin(actor)
    mapping = _find(session, (group_id or "")[:MAX_GROUP_LENGTH])
    if mapping is None:
        raise NotFound(f"The group “{(group_id or '')[:MAX_GROUP_LENGTH]}” is not mapped.")
    session.delete(mapping)
    session.flush()
    audit.record(session, EventKind.GROUP_UNMAPPED, actor=actor, group=mapping.group_id, role=mapping.role_key)
    return mapping

