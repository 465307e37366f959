"""Group mappings: the groups that diagrams name in lanes and ``camunda:candidateGroups`` (Camunda's
``accounting``, ``management``, ``sales``) and that are no role, mapped by an administrator to a role.

Parsing resolves a group through its mapping (:func:`engine.definitions.known_roles` carries them, and the
definition cache is keyed by them), so a diagram refused for unmapped groups publishes once they are mapped,
and new tasks go to the mapped role's queue. Tasks already created keep their roles: a mapping changes what
the next task gets, never a task that exists. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree
from sqlalchemy.orm import Session

from . import definitions as defs
from . import juel, mappings
from . import roles as role_ops
from .db import GroupMapping, Role, User
from .definitions import BPMN_NS, CAMUNDA_NS
from .errors import InvalidForm
from .vocabulary import EventKind

MAX_GROUP_LENGTH = 200


def _named(root: etree._Element, process: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    """The groups a process's user and manual tasks name: their candidate groups, else their lane (as
    :func:`engine.definitions.parse_definitions` reads them)."""
    lanes = defs._lanes_by_node(root)
    for node in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
        entries = defs.list_entries(node.get(f"{{{CAMUNDA_NS}}}candidateGroups") or "")
        # a ${…} entry names its groups only when the task runs: they are resolved then (an incident if unmapped)
        named = [g for g in entries if not juel.is_expression(g)]
        lane = lanes.get(node.get("id") or "")
        for group in named or ([lane] if lane and not entries else []):
            yield node, group


KIND = mappings.Kind(model=GroupMapping, name_column="group_id", target_column="role_key",
                     mapped_event=EventKind.GROUP_MAPPED, unmapped_event=EventKind.GROUP_UNMAPPED,
                     name_field="group", target_field="role", noun="group",
                     admin_only="Only administrators map groups to roles.", named=_named, loose=True)


def _is_role(group: str, roles: dict[str, str]) -> bool:
    """Whether a group names a role itself (by key, or as a lane by key or display name)."""
    return group in roles or defs._role_for_lane(group, dict(roles)) is not None  # a plain dict: no mappings


def overview(session: Session) -> mappings.Overview:
    """The unmapped groups of the published diagrams and drafts (that are no role) with the elements that name
    them, and the mapped groups with the role they go to (its name the target name) and where they are used."""
    roles = defs.known_roles(session)
    found = mappings.overview(session, KIND, lambda group: _is_role(group, roles))
    for mapped in found.mapped:
        mapped.target_name = roles.get(mapped.mapping.role_key, mapped.mapping.role_key)
    return found


# --- changes ---------------------------------------------------------------------------------------


def _check_group(session: Session, group_id: str, errors: dict[str, str]) -> str:
    group_id = mappings.checked_text(group_id, "group", MAX_GROUP_LENGTH, errors,
                                     "Name the group as the diagram does (a candidate group or a lane).",
                                     "A group id has no control characters.")
    if "group" not in errors and _is_role(group_id, defs.known_roles(session)):
        errors["group"] = f"“{group_id}” is a role already: diagrams that name it need no mapping."
    return group_id


def map_group(session: Session, actor: User | None, group_id: str, role_key: str) -> GroupMapping:
    """Map a group to an existing active role, or map an already mapped group to another role.

    :raises InvalidForm: the group id is empty, longer than :data:`MAX_GROUP_LENGTH`, has control characters
        or is a role itself; the role does not exist or is deactivated
    """
    mappings.require_admin(actor, KIND)
    errors: dict[str, str] = {}
    group_id = _check_group(session, group_id, errors)
    role_key = (role_key or "").strip()
    values = {"group": group_id, "role": role_key}
    role = session.get(Role, role_key) if role_key else None
    if role is None or not role.active:
        errors["role"] = f"There is no active role “{role_key}”." if role_key else "Choose a role."
    if errors:
        raise InvalidForm(errors, values)
    return mappings.save(session, actor, KIND, group_id, role_key)


def map_group_to_new_role(session: Session, actor: User | None, group_id: str, key: str, name: str) -> GroupMapping:
    """Create a role for a group and map the group to it, in one step (both audited).

    :raises InvalidForm: what :func:`map_group` and :func:`engine.roles.create_role` refuse, together
    """
    mappings.require_admin(actor, KIND)
    errors: dict[str, str] = {}
    group_id = _check_group(session, group_id, errors)
    try:
        role_ops.create_role(session, actor, key, name)
    except InvalidForm as exc:
        raise InvalidForm({**errors, **exc.errors}, {"group": group_id, **exc.values}) from None
    if errors:
        raise InvalidForm(errors, {"group": group_id, "key": key.strip(), "name": name})
    # the new role may be named like the lane (then the lane finds it by itself): the mapping says so anyway
    return mappings.save(session, actor, KIND, group_id, key.strip())


def unmap_group(session: Session, actor: User | None, group_id: str) -> GroupMapping:
    """Remove a group's mapping. Open tasks keep their roles; tasks created from now on no longer find
    the role (a published diagram that names the group lists it as unmapped again).

    :raises NotFound: the group is not mapped
    """
    mappings.require_admin(actor, KIND)
    return mappings.remove(session, actor, KIND, mappings.existing(session, KIND, (group_id or "")[:MAX_GROUP_LENGTH]))
