"""Roles as data: administrators create, rename, deactivate roles, set their permissions, managing role
and members. Every change is audited; a refused change raises before anything is written.

A role's key never changes once made (diagrams name it in lanes and candidate groups, tasks keep it);
its display name may. A role that a published diagram or an open task uses cannot be deactivated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import audit
from . import definitions as defs
from .db import GroupMapping, HumanTask, Process, Role, TaskCandidate, User, UserRole
from .errors import InvalidForm, NotFound
from .permissions import require
from .vocabulary import EventKind, Permission, TaskStatus

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
PAGE_SIZE = 50


def _require_admin(actor: User | None, message: str = "Only administrators manage roles.") -> None:
    """``actor`` None is the operator at the console (the ``deptflow`` command)."""
    if actor is not None:
        require(actor, Permission.ADMINISTER, message)


def get_role(session: Session, key: str) -> Role:
    role = session.get(Role, key)
    if role is None:
        raise NotFound(f"There is no role “{key}”.")
    return role


def _check_permissions(permissions: list[str], errors: dict[str, str]) -> list[str]:
    known = {p.value for p in Permission}
    unknown = sorted(set(permissions) - known)
    if unknown:
        errors["permissions"] = f"Unknown permission: {', '.join(unknown)}."
    return sorted(set(permissions) & known)


def _check_manager(session: Session, key: str, name: str, manager: str | None, errors: dict[str, str]) -> str | None:
    """The managing role of role ``key`` (named ``name``): an active role, and not the role itself, neither
    directly nor through others (A managed by B, B managed by A)."""
    manager = (manager or "").strip() or None
    if manager is None:
        return None
    if manager == key:
        errors["manager_role"] = "A role cannot manage itself."
        return manager
    role = session.get(Role, manager)
    if role is None or not role.active:
        errors["manager_role"] = f"There is no active role “{manager}”."
        return manager
    cycle = _managers_up_to(session, key, role)
    if cycle:
        chain = ", which is managed by ".join([r.name for r in cycle] + [name or key])
        errors["manager_role"] = f"{name or key} is managed by {chain}: a role cannot manage itself through others."
    return manager


def _managers_up_to(session: Session, key: str, manager: Role) -> list[Role]:
    """The chain of managing roles from ``manager`` up to the role ``key``; empty when the chain does not reach it
    (it ends, or loops among other roles)."""
    chain, seen = [manager], {key, manager.key}
    while (above := chain[-1].manager_role) is not None:
        if above == key:
            return chain
        role = session.get(Role, above) if above not in seen else None
        if role is None:
            return []
        seen.add(above)
        chain.append(role)
    return []


def create_role(session: Session, actor: User | None, key: str, name: str, *, description: str = "",
                permissions: list[str] | None = None, manager_role: str | None = None) -> Role:
    """A new role; its key is fixed from now on.

    :raises InvalidForm: per field: a key already taken (also by a deactivated role) or not of lower-case
        letters, digits and ``_``; no name; an unknown permission or managing role, or one whose chain of
        managers already names the new key (a role set up, by ``users.ensure_role``, before its manager existed)
    """
    _require_admin(actor)
    key, name = key.strip(), " ".join(name.split())
    values = {"key": key, "name": name, "description": description, "permissions": permissions or [],
              "manager_role": manager_role or ""}
    errors: dict[str, str] = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = "Use 2–64 lower-case letters, digits and _, starting with a letter."
    elif session.get(Role, key) is not None:
        errors["key"] = f"The key “{key}” is taken already (keys stay reserved, also for deactivated roles)."
    if not name:
        errors["name"] = "Name the role."
    elif len(name) > 200:
        errors["name"] = "Use at most 200 characters."
    granted = _check_permissions(list(permissions or []), errors)
    manager = _check_manager(session, key, name, manager_role, errors)
    if errors:
        raise InvalidForm(errors, values)
    role = Role(key=key, name=name, description=description.strip(), permissions=granted, manager_role=manager,
                active=True)
    session.add(role)
    session.flush()
    audit.record(session, EventKind.ROLE_CREATED, actor=actor, role=key, name=name, permissions=granted,
                 manager_role=manager)
    return role


def _state(role: Role) -> dict:
    return {"name": role.name, "description": role.description or "", "permissions": sorted(role.permissions or []),
            "manager_role": role.manager_role, "active": role.active}


def update_role(session: Session, actor: User | None, key: str, *, name: str, description: str = "",
                permissions: list[str], manager_role: str | None, active: bool) -> Role:
    """Rename a role, set its permissions and managing role, deactivate or reactivate it.

    :raises InvalidForm: no name; unknown permission or managing role, or a managing role that the role itself
        manages (directly or through others: the message names the cycle); deactivating a role that a
        published diagram or an open task uses (the message lists them); leaving nobody who may administer
    """
    _require_admin(actor)
    role = get_role(session, key)
    name = " ".join(name.split())
    values = {"key": key, "name": name, "description": description, "permissions": permissions,
              "manager_role": manager_role or "", "active": active}
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Name the role."
    elif len(name) > 200:
        errors["name"] = "Use at most 200 characters."
    granted = _check_permissions(list(permissions), errors)
    manager = _check_manager(session, key, name or role.name, manager_role, errors)
    if role.active and not active:
        uses = role_usage(session, key)
        if uses:
            errors["active"] = "The role is in use, so it stays active: " + "; ".join(uses) + "."
    if errors:
        raise InvalidForm(errors, values)
    before = _state(role)
    role.name, role.description, role.permissions = name, description.strip(), granted
    role.manager_role, role.active = manager, active
    after = _state(role)
    session.flush()
    require_an_administrator(session, "permissions" if active else "active", values)
    if before != after:
        audit.record(session, EventKind.ROLE_CHANGED, actor=actor, role=key, before=before, after=after)
    return role


def role_usage(session: Session, key: str) -> list[str]:
    """What uses the role: the latest published diagrams whose lanes or candidate groups name it (also through
    a group mapping), the processes it may start or owns, open tasks waiting for it, the groups mapped to it."""
    uses = []
    for process in session.scalars(select(Process).order_by(Process.title)):
        why = []
        definition = defs.latest_definition(session, process.key, required=False)
        if definition is not None:
            parsed = defs.parsed(session, definition)
            tasks = [info.name for info in parsed.user_tasks.values() if key in info.candidate_roles]
            if tasks:
                why.append("tasks " + ", ".join(f"“{t}”" for t in tasks))
        if key in (process.starter_roles or []):
            why.append("starts it")
        if process.owner_role == key:
            why.append("owns it")
        if why:
            uses.append(f"{process.title} ({'; '.join(why)})")
    open_tasks = session.scalar(select(func.count()).select_from(TaskCandidate).join(
        HumanTask, HumanTask.id == TaskCandidate.task_id).where(
        TaskCandidate.role_key == key, HumanTask.status == TaskStatus.OPEN)) or 0
    if open_tasks:
        uses.append(f"{open_tasks} open task{'s' if open_tasks != 1 else ''}")
    groups = list(session.scalars(select(GroupMapping.group_id).where(GroupMapping.role_key == key)
                                  .order_by(GroupMapping.group_id)))
    if groups:
        uses.append("mapped from group" + ("s " if len(groups) > 1 else " ") + ", ".join(f"“{g}”" for g in groups))
    return uses


def administrators(session: Session) -> list[int]:
    """Ids of the active users who hold an active role granting ``administer``."""
    keys = [r.key for r in session.scalars(select(Role).where(Role.active.is_(True)))
            if Permission.ADMINISTER in (r.permissions or [])]
    if not keys:
        return []
    return list(session.scalars(select(User.id).join(UserRole, UserRole.user_id == User.id).where(
        UserRole.role_key.in_(keys), User.active.is_(True)).distinct()))


def require_an_administrator(session: Session, field_name: str, values: dict) -> None:
    """Refuse a change after which nobody could administer deptflow (the caller rolls it back)."""
    session.flush()
    if not administrators(session):
        raise InvalidForm({field_name: "This would leave nobody who may administer deptflow (the last holder "
                                       "of “administer”)."}, values)


# --- lists and pages ---------------------------------------------------------------------------


@dataclass
class RoleRow:
    role: Role
    members: int


@dataclass
class Page:
    rows: list
    total: int
    page: int
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _like(text: str) -> str:
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def role_list(session: Session, query: str = "", page: int = 1, page_size: int = PAGE_SIZE) -> Page:
    """Roles by name with their member counts, filtered by key or name, a page at a time."""
    members = (select(UserRole.role_key, func.count().label("n")).join(User, User.id == UserRole.user_id)
               .where(User.active.is_(True)).group_by(UserRole.role_key).subquery())
    roles = select(Role, func.coalesce(members.c.n, 0)).outerjoin(members, members.c.role_key == Role.key)
    if query.strip():
        pattern = _like(query)
        roles = roles.where(or_(func.lower(Role.key).like(pattern, escape="\\"),
                                func.lower(Role.name).like(pattern, escape="\\")))
    total = session.scalar(select(func.count()).select_from(roles.subquery())) or 0
    rows = session.execute(roles.order_by(Role.active.desc(), Role.name)
                           .limit(page_size).offset((page - 1) * page_size)).all()
    return Page([RoleRow(role, count) for role, count in rows], total, page, page_size)


@dataclass
class RolePage:
    role: Role
    members: Page
    managed: list[Role] = field(default_factory=list)
    uses: list[str] = field(default_factory=list)


def role_page(session: Session, key: str, query: str = "", page: int = 1) -> RolePage:
    """A role with its members (searchable, paged), the roles it manages and what uses it."""
    role = get_role(session, key)
    members = select(User).join(UserRole, UserRole.user_id == User.id).where(UserRole.role_key == key)
    if query.strip():
        members = members.where(_user_matches(query))
    total = session.scalar(select(func.count()).select_from(members.subquery())) or 0
    rows = list(session.scalars(members.order_by(User.full_name, User.id).limit(PAGE_SIZE)
                                .offset((page - 1) * PAGE_SIZE)))
    managed = list(session.scalars(select(Role).where(Role.manager_role == key).order_by(Role.name)))
    return RolePage(role, Page(rows, total, page), managed, role_usage(session, key))


def _user_matches(query: str):
    pattern = _like(query)
    return or_(func.lower(User.username).like(pattern, escape="\\"),
               func.lower(User.full_name).like(pattern, escape="\\"),
               func.lower(func.coalesce(User.email, "")).like(pattern, escape="\\"))


def set_members(session: Session, actor: User | None, key: str, *, add: list[str] = (),
                remove: list[int] = ()) -> tuple[list[str], list[str]]:
    """Add users (by username) to a role and remove others (by id), from the role's page.

    :returns: the usernames added and removed
    :raises InvalidForm: an unknown username, a deactivated role, or nobody left who may administer
    """
    _require_admin(actor)
    role = get_role(session, key)
    names = [n.strip().lower() for n in add if n.strip()]
    values = {"add": ", ".join(names)}
    found = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))} if names else {}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise InvalidForm({"add": f"No user {', '.join(unknown)}."}, values)
    if names and not role.active:
        raise InvalidForm({"add": "The role is deactivated; it takes no new members."}, values)
    added, removed = [], []
    for user in found.values():
        if role not in user.roles:
            user.roles.append(role)
            added.append(user.username)
    for user in session.scalars(select(User).where(User.id.in_(list(remove)))) if remove else []:
        if role in user.roles:
            if actor is not None and user.id == actor.id and Permission.ADMINISTER in (role.permissions or []):
                raise InvalidForm({"remove": "You cannot remove your own administrator access."}, values)
            user.roles.remove(role)
            removed.append(user.username)
    require_an_administrator(session, "remove", values)
    if added or removed:
        audit.record(session, EventKind.ROLE_MEMBERS_CHANGED, actor=actor, role=key, added=sorted(added),
                     removed=sorted(removed))
    return sorted(added), sorted(removed)


def ensure_lane_roles(session: Session, xml: str) -> list[str]:
    """Create, without members or permissions, the roles a diagram's lanes and candidate groups name and
    that do not exist yet (what ``deptflow init`` does for the shipped diagrams).

    :returns: the keys created
    """
    created = []
    for key, name in roles_named_by(xml).items():
        if session.get(Role, key) is None and KEY_PATTERN.match(key):
            session.add(Role(key=key, name=name, description="", permissions=[], active=True))
            session.flush()
            audit.record(session, EventKind.ROLE_CREATED, role=key, name=name, permissions=[], manager_role=None)
            created.append(key)
    return created


def roles_named_by(xml: str) -> dict[str, str]:
    """Role keys → display names a diagram needs: lanes (``Lane_<key>`` ids, else the name as a key) and
    candidate groups."""
    root = defs.parse_xml(xml)
    roles: dict[str, str] = {}
    for lane in root.iterfind(".//bpmn:lane", defs.NS):
        name = " ".join((lane.get("name") or "").split())
        lane_id = lane.get("id") or ""
        key = lane_id[len("Lane_"):] if lane_id.startswith("Lane_") else re.sub(r"\W+", "_", name.lower()).strip("_")
        if key and name:
            roles.setdefault(key, name)
    for task in root.iterfind(".//bpmn:userTask", defs.NS):
        groups = task.get(f"{{{defs.CAMUNDA_NS}}}candidateGroups") or ""
        for group in (g.strip() for g in groups.split(",")):
            if group and "${" not in group:
                roles.setdefault(group, group.replace("_", " ").capitalize())
    return roles
