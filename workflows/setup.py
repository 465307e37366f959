"""Install the catalogue into a database: roles, processes (deployed BPMN) and demo users."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, audit_signing, definitions, schema, users
from engine.core import WorkflowEngine
from engine.db import Process, ProcessDefinition, make_engine

from .catalogue import DEMO_PASSWORD, DEMO_USERS, PROCESSES, ROLES
from .demo import install_demo_cases


def install_catalogue(session: Session) -> list[str]:
    """Create or update roles, deploy every shipped BPMN file (a changed file becomes a
    new version) and set who may start each process. Idempotent.

    :returns: one line per process naming the version made from the shipped file (not the
        current one when a process owner has published a newer version since)
    """
    for role in ROLES:
        users.ensure_role(session, role.key, role.name, role.description, list(role.permissions))
    session.flush()
    report = []
    for spec in PROCESSES:
        xml = spec.path.read_text(encoding="utf-8")
        definition = _shipped_version(session, spec.key, definitions.sha256(xml))
        if definition is None:  # a new or changed file; one published already is not published again
            definition = definitions.deploy(session, None, xml, title=spec.title)
        process = session.get(Process, spec.key)
        process.title = spec.title
        process.description = spec.description
        process.starter_roles = list(spec.starter_roles)
        process.owner_role = spec.owner_role
        process.separated_tasks = list(spec.separated_tasks)
        report.append(f"{spec.key}: version {definition.version}")
    session.flush()
    return report


def _shipped_version(session: Session, key: str, digest: str) -> ProcessDefinition | None:
    """The version already made from this exact file, if any. Without this check, re-running
    ``deptflow init`` would re-publish the shipped file over a newer version a process owner
    published from the modeler."""
    return session.scalars(select(ProcessDefinition).where(
        ProcessDefinition.process_key == key, ProcessDefinition.sha256 == digest)).first()


def install_demo_users(session: Session) -> list[str]:
    """One demo user per role (password ``demo``); existing users keep their passwords."""
    for demo in DEMO_USERS:
        users.ensure_user(session, demo.username, demo.full_name, DEMO_PASSWORD, list(demo.roles),
                          email=f"{demo.username}@example.com")
    session.flush()
    return [demo.username for demo in DEMO_USERS]


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
               workflow_engine: WorkflowEngine | None = None) -> list[str]:
    """Create the database at ``url`` (a SQLite file and its directory) or bring it to the current
    schema, and install the catalogue (and the demo users with ``demo``) in one transaction; what
    ``deptflow init`` does. With ``demo`` and ``cases``, an empty database also gets a few demo cases.
    With ``audit_key``, the audit signing key (see :func:`install_audit_key`) comes first.

    :returns: report lines for the console
    """
    schema.prepare_directory(url)
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
        with (workflow_engine or WorkflowEngine(audit_key=audit_key)).session_factory(engine)() as session:
            report = install_audit_key(session, audit_key) if audit_key is not None else []
            report += install_catalogue(session)
            if demo:
                names = install_demo_users(session)
                report.append(f"demo users (password '{DEMO_PASSWORD}'): {', '.join(names)}")
            session.commit()
            if demo and cases:
                report.append(f"demo cases started: {install_demo_cases(session)}")
    finally:
        engine.dispose()
    return report
