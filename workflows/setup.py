"""Install into a database: the shipped processes (deployed BPMN) with the roles their lanes name, the
first administrator, and with ``--demo`` the demo organisation (roles, users, process settings, cases)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, audit_signing, definitions, people, roles, schema, users
from engine.core import WorkflowEngine
from engine.db import Process, ProcessDefinition, Role, make_engine
from engine.vocabulary import Permission

from .catalogue import BPMN_DIR, DEMO_PASSWORD, DEMO_USERS, PROCESSES, ROLES
from .demo import install_demo_cases


def shipped_files() -> list[Path]:
    """The BPMN files deptflow ships (``bpmn/`` of the checkout, or ``DEPTFLOW_BPMN_DIR``)."""
    return sorted(BPMN_DIR.glob("*.bpmn"))


def install_catalogue(session: Session, *, demo: bool = False) -> list[str]:
    """Deploy every shipped BPMN file (a changed file becomes a new version), creating without members the
    roles their lanes name. With ``demo``, the demo organisation's roles (with their permissions) come
    first, and a process published here for the first time takes the demo catalogue's settings (title,
    description, starters, owner, separation of duties). Idempotent: roles and settings that exist are
    data and stay as they are.

    :returns: one line per process naming the version made from the shipped file (not the
        current one when a process owner has published a newer version since)
    """
    if demo:
        for role in ROLES:
            if session.get(Role, role.key) is None:
                users.ensure_role(session, role.key, role.name, role.description, list(role.permissions),
                                  manager_role=role.manager_role)
        session.flush()
    specs = {spec.file: spec for spec in PROCESSES}
    report = []
    for path in shipped_files():
        xml = path.read_text(encoding="utf-8")
        roles.ensure_lane_roles(session, xml)
        spec = specs.get(path.name) if demo else None
        key = definitions.parse_xml(xml).find("bpmn:process", definitions.NS).get("id")
        is_new = session.get(Process, key) is None
        definition = _shipped_version(session, key, definitions.sha256(xml))
        if definition is None:  # a new or changed file; one published already is not published again
            definition = definitions.deploy(session, None, xml, title=spec.title if spec else None)
        if is_new and spec is not None:
            process = session.get(Process, spec.key)
            process.title, process.description = spec.title, spec.description
            process.starter_roles = list(spec.starter_roles)
            process.owner_role = spec.owner_role
            process.separated_tasks = list(spec.separated_tasks)
            process.separated_pairs = [sorted(pair) for pair in spec.separated_pairs]
        report.append(f"{key}: version {definition.version}")
    session.flush()
    return report


def _shipped_version(session: Session, key: str, digest: str) -> ProcessDefinition | None:
    """The version already made from this exact file, if any. Without this check, re-running
    ``deptflow init`` would re-publish the shipped file over a newer version a process owner
    published from the modeler."""
    return session.scalars(select(ProcessDefinition).where(
        ProcessDefinition.process_key == key, ProcessDefinition.sha256 == digest)).first()


def install_demo_users(session: Session) -> list[str]:
    """One demo user per role (password ``demo``); existing users keep their passwords. The password is
    hashed once for all of them: argon2 spends half a second per hash by design, and the demo's password is
    no secret."""
    demo_hash = users.hash_password(DEMO_PASSWORD)
    for demo in DEMO_USERS:
        users.ensure_user(session, demo.username, demo.full_name, None, list(demo.roles),
                          email=f"{demo.username}@example.com", password_hash=demo_hash)
    session.flush()
    return [demo.username for demo in DEMO_USERS]


#: what the first administrator's role grants when ``init --admin`` has to create it
ADMIN_PERMISSIONS = [Permission.ADMINISTER, Permission.AUDIT, Permission.MODEL, Permission.READ_ALL_CASES,
                     Permission.STATISTICS]


def install_admin(session: Session, username: str, password: str) -> str:
    """The first administrator: a new user holding a role that grants ``administer`` (the first active one,
    else a new role ``admin``). An existing user gets that role and keeps their password.

    :raises engine.errors.InvalidForm: a malformed username or a password too short
    """
    role = next((r for r in session.scalars(select(Role).where(Role.active.is_(True)).order_by(Role.key))
                 if Permission.ADMINISTER in (r.permissions or [])), None)
    if role is None:
        key = "admin" if session.get(Role, "admin") is None else "administrator"
        role = roles.create_role(session, None, key, "Administrator", description="Manages users, roles and processes.",
                                 permissions=[p.value for p in ADMIN_PERMISSIONS])
    user = users.user_by_name(session, username.strip().lower())
    if user is not None:
        if role not in user.roles:
            people.update_access(session, None, user.id, [*(r.key for r in user.roles), role.key], True)
        return f"administrator {user.username} kept (role {role.key}; password unchanged)"
    created = people.create_user(session, None, username, username, role_keys=[role.key], password=password)
    return f"administrator {created.user.username} created (role {role.key})"


def install_audit_key(session: Session, path: Path) -> list[str]:
    """Create the audit signing key at ``path`` unless it exists (never overwritten), and sign
    the chain heads written before there was one, if the whole log checks out with them.

    :returns: report lines for the console
    """
    report = [f"audit key {'created' if audit_signing.create_key(path) else 'kept'}: {path}"]
    signed = audit_signing.sign_unsigned_heads(session, audit_signing.load_signer(path))
    if signed:
        result = audit.verify(session)  # with the signatures just made: the old chain must hold first
        if not result.ok:
            session.rollback()
            return [*report, f"audit: {signed} chain heads left unsigned: {result}"]
        session.commit()
        report.append(f"audit: signed {signed} chain heads written before the key")
    return report


def initialise(url: str, *, demo: bool, cases: bool = False, audit_key: Path | None = None,
               workflow_engine: WorkflowEngine | None = None, admin: tuple[str, str] | None = None) -> list[str]:
    """Create the database at ``url`` (a SQLite file and its directory) or bring it to the current
    schema, and install the catalogue (and the demo users with ``demo``) in one transaction; what
    ``deptflow init`` does. With ``demo`` and ``cases``, an empty database also gets a few demo cases.
    With ``admin`` (username, password), the first administrator (see :func:`install_admin`).
    With ``audit_key``, the audit signing key (see :func:`install_audit_key`) comes first.

    :returns: report lines for the console
    """
    schema.prepare_directory(url)
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
        with (workflow_engine or WorkflowEngine(audit_key=audit_key)).session_factory(engine)() as session:
            report = install_audit_key(session, audit_key) if audit_key is not None else []
            report += install_catalogue(session, demo=demo)
            if admin is not None:
                report.append(install_admin(session, *admin))
            if demo:
                names = install_demo_users(session)
                report.append(f"demo users (password '{DEMO_PASSWORD}'): {', '.join(names)}")
            session.commit()
            if demo and cases:
                report.append(f"demo cases started: {install_demo_cases(session)}")
    finally:
        engine.dispose()
    return report
