"""Database models, engine and session factory.

SQLite (``deptflow.sqlite3`` in the data directory, see :func:`data_dir`) is the default;
PostgreSQL through psycopg 3 is the production database:
``DEPTFLOW_DATABASE_URL=postgresql+psycopg://user@host/db``.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .clock import utcnow
from .vocabulary import InstanceStatus, TaskStatus


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    email_notifications: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: raised to end every login session of the user (logout, password change, deactivation)
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")

    roles: Mapped[list[Role]] = relationship(secondary="user_roles", order_by="Role.key")

    @property
    def role_keys(self) -> set[str]:
        """The user's active roles (a deactivated role gives its members nothing)."""
        return {role.key for role in self.roles if role.active is not False}

    @property
    def permissions(self) -> set[str]:
        """What the user's active roles allow (see :class:`engine.vocabulary.Permission`)."""
        return {permission for role in self.roles if role.active is not False for permission in role.permissions or ()}

    def __repr__(self) -> str:
        return f"<User {self.username}>"


class Role(Base):
    __tablename__ = "roles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    #: what members may do beyond their tasks (:class:`engine.vocabulary.Permission` values)
    permissions: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    #: an inactive role gives its members nothing and takes no new members; its key stays reserved
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: the role whose holders reassign this role's tasks (delegate any of its open tasks)
    manager_role: Mapped[str | None] = mapped_column(String(64))

    def __repr__(self) -> str:
        return f"<Role {self.key}>"


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role_key: Mapped[str] = mapped_column(ForeignKey("roles.key", ondelete="CASCADE"), primary_key=True)


class Process(Base):
    """A catalogue entry: one business process, with versions in ``ProcessDefinition``."""

    __tablename__ = "processes"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    starter_roles: Mapped[list[Any]] = mapped_column(default=list)
    owner_role: Mapped[str | None] = mapped_column(String(64))
    #: user task ids the person who started a case may not claim or complete (separation of duties)
    separated_tasks: Mapped[list[Any]] = mapped_column(default=list)
    #: pairs [a, b] of user task ids that must be done by different people in one case
    separated_pairs: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    #: ``camunda:dueDate`` for user tasks whose diagram sets none (an ISO 8601 duration such as ``P3D``)
    default_due: Mapped[str | None] = mapped_column(String(64))
    #: priority of user tasks whose diagram sets none
    default_priority: Mapped[int | None] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"<Process {self.key}>"


class ProcessDefinition(Base):
    """One published version of a process's BPMN diagram."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("process_key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(ForeignKey("processes.key"))
    version: Mapped[int] = mapped_column(Integer)
    bpmn_process_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    xml: Mapped[str] = mapped_column(Text, deferred=True)  # 30 KB of BPMN: loaded only when asked for
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="published")
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    published_by: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<ProcessDefinition {self.process_key} v{self.version}>"


class DecisionDefinition(Base):
    """One published version of a DMN decision. A file with several decisions (a decision requirement
    graph) publishes one row per decision, each holding the whole file, so that a decision is always
    evaluated with the decisions it requires as they were published together."""

    __tablename__ = "decision_definitions"
    __table_args__ = (UniqueConstraint("decision_key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    decision_key: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    xml: Mapped[str] = mapped_column(Text, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64))
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    published_by: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<DecisionDefinition {self.decision_key} v{self.version}>"


def postgresql_only(index: Index) -> Index:
    """An index only PostgreSQL has (an extension's operator class): SQLite's schema lacks it, and the
    comparison of the models with a SQLite database leaves it out (:func:`engine.schema.include_object`)."""
    index.info["dialect"] = "postgresql"
    return index.ddl_if(dialect="postgresql")


class ProcessInstance(Base):
    __tablename__ = "process_instances"
    __table_args__ = (
        Index("ix_instances_starter", "started_by_id", "started_at"),
        Index("ix_instances_started", "started_at", "id"),
        Index("ix_instances_process_status", "process_key", "status"),
        #: the dashboard's cases finished in a range (revision 0011)
        Index("ix_instances_status_ended", "status", "ended_at"),
        #: the dashboard's cases started in a range, per process (revision 0015)
        Index("ix_instances_process_started", "process_key", "started_at"),
        #: the inbox's text search (``ILIKE '%…%'``) on PostgreSQL: trigram indexes (pg_trgm, revision 0016)
        *(postgresql_only(Index(f"ix_instances_{column}_trgm", column, postgresql_using="gin",
                                postgresql_ops={column: "gin_trgm_ops"})) for column in ("title", "business_key")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"))
    process_key: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300))
    business_key: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), default=InstanceStatus.RUNNING)
    started_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(Text, deferred=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: raised by every write of the row (:func:`engine.rows.write_instance` guards on it)
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    #: The earliest waiting BPMN timer, kept in step by every operation; the worker polls it.
    next_timer_at: Mapped[datetime | None] = mapped_column(index=True)
    #: Head of the case's own audit chain (see :mod:`engine.audit`): its last sequence number and hash.
    audit_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    audit_hash: Mapped[str | None] = mapped_column(String(64))
    #: Ed25519 signature (hex) over the head, see :mod:`engine.audit_signing`; None for heads written without a key.
    audit_signature: Mapped[str | None] = mapped_column(String(128))

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")
    started_by: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<ProcessInstance {self.id} {self.process_key} {self.status}>"


class HumanTask(Base):
    """The inbox projection: one row per user task that is or was ready."""

    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_tasks_open_assignee", "status", "assignee_id", "due_at"),
        Index("ix_tasks_instance", "instance_id", "status"),
        Index("ix_tasks_completed_by", "completed_by_id", "completed_at"),
        Index("ix_tasks_open_due", "status", "due_at"),
        #: the dashboard's tasks completed in a range (revision 0011)
        Index("ix_tasks_status_completed", "status", "completed_at"),
        #: (revision 0015 added two partial covering indexes of completed tasks for the dashboard's aggregates;
        #: revision 0017 dropped them: its roll-ups read completed tasks by day through ix_tasks_status_completed)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    #: the case's process, copied when the row is written (revision 0015): the dashboard groups tasks by process
    #: without joining their cases
    process_key: Mapped[str | None] = mapped_column(String(100))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(Integer, default=50)
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    completed_at: Mapped[datetime | None]
    submitted: Mapped[dict[str, Any] | None]
    due_soon_notified: Mapped[bool] = mapped_column(default=False)
    overdue_notified: Mapped[bool] = mapped_column(default=False)
    #: roles that may work on the task (lane or candidate groups), kept after the task closes
    candidate_roles: Mapped[list[Any]] = mapped_column(default=list)
    #: the assignee's follow-up date (Camunda's followUp): until then the task waits under "Follow-up"
    #: instead of among their tasks
    follow_up_at: Mapped[datetime | None]

    instance: Mapped[ProcessInstance] = relationship(lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id], lazy="joined")

    def __repr__(self) -> str:
        return f"<HumanTask {self.id} {self.element_id} {self.status}>"


class TaskCandidate(Base):
    """A role whose members may claim an *open* task: the inbox's lookup by role.

    Rows exist only while the task is open (see :func:`engine.inbox.close`), so the lookup
    never wades through the candidate rows of finished tasks; ``HumanTask.candidate_roles``
    keeps the roles for good.
    """

    __tablename__ = "task_candidates"
    __table_args__ = (Index("ix_task_candidates_role", "role_key", "task_id"),)

    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id", ondelete="CASCADE"), primary_key=True)
    role_key: Mapped[str] = mapped_column(String(64), primary_key=True)


class Event(Base):
    """The audit log: one row per thing that happened, hash-chained (see :mod:`engine.audit`)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_instance", "instance_id", "id"),
        Index("ix_events_actor", "actor_id", "instance_id"),
        Index("ix_events_kind_at", "kind", "at"),
        #: the dashboard's path frequency (revision 0015): the gateway decisions of a range, with their process
        #: and flow, from the index alone on PostgreSQL
        Index("ix_events_decisions", "at", postgresql_include=["process_key", "data"],
              postgresql_where=text("kind = 'gateway_decision'"), sqlite_where=text("kind = 'gateway_decision'")),
        UniqueConstraint("chain", "seq", name="uq_events_chain_seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: 0: the global chain (events outside a case, and each case's ``started``); else the case's own chain
    chain: Mapped[int] = mapped_column(default=0, server_default="0")
    seq: Mapped[int | None]
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    #: the case's process (revision 0015; not covered by the hash: a copy of what ``instance_id`` names)
    process_key: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    element_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    actor: Mapped[User | None] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Event {self.kind} instance={self.instance_id}>"


class CaseSummary(Base):
    """One row per finished case, written when it ends (revision 0013): what the dashboard's case figures
    aggregate, so that a request reads one narrow row per case instead of the case's tasks and decisions."""

    __tablename__ = "case_summaries"
    __table_args__ = (Index("ix_case_summaries_process_finished", "process_key", "finished_at", "cycle_seconds"),)

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100))
    started_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    #: ``finished_at − started_at`` in seconds
    cycle_seconds: Mapped[float] = mapped_column(Float)
    #: some user task was completed more than once, or some exclusive gateway decided more than once
    reworked: Mapped[bool]
    #: some task was completed after its due date
    late: Mapped[bool]


class DashboardPeriod(Base):
    """A day or month that is over and whose items a dashboard figure has summed into :class:`DashboardRollup`
    rows (revision 0017; :mod:`engine.rollups`)."""

    __tablename__ = "dashboard_periods"

    figure: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: ``day`` or ``month``
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)
    start: Mapped[date] = mapped_column(primary_key=True)
    sealed_at: Mapped[datetime] = mapped_column(default=utcnow)


class DashboardRollup(Base):
    """One group of one figure in one sealed period: its counts added up and, for a figure with percentiles, every
    value of the group (packed little-endian doubles), so that percentiles over several periods stay exact."""

    __tablename__ = "dashboard_rollups"

    figure: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(5), primary_key=True)
    start: Mapped[date] = mapped_column(primary_key=True)
    #: the group's keys as a JSON list, the first the process
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100))
    #: the group's counts as a JSON list
    counts: Mapped[str] = mapped_column(Text)
    packed_values: Mapped[bytes | None] = mapped_column(LargeBinary)


class Notification(Base):
    """The outbox: shown in the web UI, e-mailed by the worker when SMTP is configured."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user", "user_id", "read_at", "id"),
        Index("ix_notifications_email", "email_state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    #: off (no address or switched off), pending, sent, failed
    email_state: Mapped[str] = mapped_column(String(10), default="off")
    email_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    #: a path below the base URL that the mail links to instead of the task or case (a set-password
    #: link); the worker clears it once the mail is sent
    link: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Notification {self.kind} user={self.user_id}>"


class ProcessSchedule(Base):
    """When the worker next starts a process whose start event is a timer."""

    __tablename__ = "process_schedules"

    process_key: Mapped[str] = mapped_column(ForeignKey("processes.key"), primary_key=True)
    next_start_at: Mapped[datetime | None] = mapped_column(index=True)
    last_started_at: Mapped[datetime | None]


class PasswordToken(Base):
    """A set-password link: single use, expiring, kept only as the SHA-256 of its token."""

    __tablename__ = "password_tokens"
    __table_args__ = (Index("ix_password_tokens_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    def __repr__(self) -> str:
        return f"<PasswordToken {self.id} user={self.user_id}>"


class AuditHead(Base):
    """The newest sealed event of the global chain: one row, locked while a transaction appends to it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    #: Ed25519 signature (hex) over the head, see :mod:`engine.audit_signing`; None for heads written without a key.
    last_signature: Mapped[str | None] = mapped_column(String(128))


def data_dir() -> Path:
    """Where the default SQLite database lives, whatever the current directory:
    ``$DEPTFLOW_DATA_DIR``, else ``$XDG_DATA_HOME/deptflow`` (``~/.local/share/deptflow``).
    Nothing here creates it: ``deptflow init`` does."""
    explicit = os.environ.get("DEPTFLOW_DATA_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".local" / "share"  # XDG: relative is invalid
    return base / "deptflow"


def database_url() -> str:
    """The configured database URL: ``$DEPTFLOW_DATABASE_URL``, else ``deptflow.sqlite3`` in :func:`data_dir`."""
    return os.environ.get("DEPTFLOW_DATABASE_URL") or f"sqlite:///{data_dir() / 'deptflow.sqlite3'}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class ProcessDraft(Base):
    """A saved, unpublished state of a diagram in the modeler: nothing runs on it.

    Not tied to ``processes`` by a foreign key: the draft of a new process comes before its
    first publication. Every save is a new row, so the rows of a key are its draft history.
    """

    __tablename__ = "process_drafts"
    __table_args__ = (Index("ix_process_drafts_key", "process_key", "saved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), default="")
    xml: Mapped[str] = mapped_column(Text, deferred=True)  # 30 KB of BPMN: loaded only when asked for
    sha256: Mapped[str] = mapped_column(String(64))
    base_version: Mapped[int | None] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    author: Mapped[User | None] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<ProcessDraft {self.id} {self.process_key}>"


class TaskArchive(Base):
    """SpiffWorkflow tasks compacted out of an instance's live state (see :func:`engine.persistence.compact`).

    Append-only, one row per compaction: the tasks no longer affect the run, so they leave the
    state every step loads and dumps; readers of the whole path (the history page) read them here.
    """

    __tablename__ = "task_archive"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: {"root": new root id, "tasks": [serialized task + "bpmn_id"], "subprocesses": {task id: serialized}}
    tasks: Mapped[dict[str, Any]]

    def __repr__(self) -> str:
        return f"<TaskArchive {self.id} instance={self.instance_id}>"


# --- the REST API (revision 0005) --------------------------------------------------------


class ApiToken(Base):
    """A bearer token for ``/api/v1``: only its SHA-256 is kept; it acts as its owner within ``roles``."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: the token's first characters, to tell tokens apart in a list (the rest is never shown again)
    prefix: Mapped[str] = mapped_column(String(12))
    #: the scope: role keys of the owner the token acts with (their current roles narrow it further)
    roles: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.prefix}… user={self.user_id}>"


class ApiIdempotencyKey(Base):
    """The case a start request with an ``Idempotency-Key`` header started (one per user and key)."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_api_idempotency_keys_user_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the request (process and body): the same key with another request is refused
    request_hash: Mapped[str] = mapped_column(String(64))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ApiIdempotencyKey {self.key} → {self.instance_id}>"


# --- group mappings (revision 0006) ------------------------------------------------------


class GroupMapping(Base):
    """A group that diagrams name (a lane, a ``camunda:candidateGroups`` entry, e.g. Camunda's ``accounting``)
    and that is no role's key or name, mapped to the role whose members do its tasks."""

    __tablename__ = "group_mappings"

    #: as the diagram names it; lanes and candidate groups find it ignoring case, spaces and ``_``
    group_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    role_key: Mapped[str] = mapped_column(ForeignKey("roles.key"), index=True)
    mapped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    mapped_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<GroupMapping {self.group_id} → {self.role_key}>"


# --- Java delegate mappings (revision 0014) ----------------------------------------------


class DelegateMapping(Base):
    """A Camunda 7 Java delegate that diagrams name on service tasks (a ``camunda:class`` name, a
    ``camunda:delegateExpression`` or ``camunda:expression``), mapped to the external task topic whose
    workers do its work instead."""

    __tablename__ = "delegate_mappings"

    #: exactly as the diagram names it (``org.camunda.bpm.example.invoice.service.ArchiveInvoiceService``)
    delegate: Mapped[str] = mapped_column(String(300), primary_key=True)
    topic: Mapped[str] = mapped_column(String(200))
    mapped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    mapped_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<DelegateMapping {self.delegate} → {self.topic}>"


# --- external task workers (revision 0007) ---------------------------------------------


class ExternalTask(Base):
    """The external task projection: one row per external service task (``camunda:type="external"``) that
    is or was waiting for a worker, kept in step with the workflow as ``human_tasks`` is
    (see :mod:`engine.external_queue`).

    A worker fetches and locks open rows of its topics; the lock is its own until ``lock_expires_at``, then any
    worker may take the task. ``retries_left`` is what the last failure left (None: never failed); at 0 the
    case is an incident and the row waits for the case's retry.
    """

    __tablename__ = "external_tasks"
    __table_args__ = (
        Index("ix_external_tasks_fetch", "status", "topic", "lock_expires_at"),
        Index("ix_external_tasks_instance", "instance_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    topic: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the worker holding (or, once it completed, that completed) the task
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lock_expires_at: Mapped[datetime | None]
    retries_left: Mapped[int | None]
    #: after a failure, no worker gets the task before this time
    retry_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<ExternalTask {self.id} {self.topic} {self.status}>"


# --- comments and attachments (revision 0008) --------------------------------------------


class Comment(Base):
    """A remark on a case (``task_id``: made on one of its tasks); its text is also on the audit chain."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")
    task: Mapped[HumanTask | None] = relationship()

    def __repr__(self) -> str:
        return f"<Comment {self.id} instance={self.instance_id}>"


class SavedFilter(Base):
    """A person's named inbox filter (:class:`engine.task_filters.TaskFilter` as JSON), counted in the sidebar."""

    __tablename__ = "saved_filters"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(80))
    criteria: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<SavedFilter {self.id} {self.name!r}>"


class Attachment(Base):
    """A file of a case: its content lives on disk under its SHA-256 (see :mod:`engine.attachments`).

    ``instance_id`` is empty only inside the transaction that starts the case a start form's file
    belongs to; ``field_id`` names the form field it came from (None: added to the case directly).
    """

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_instance", "instance_id", "id"),
                      Index("ix_attachments_sha256", "sha256"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    field_id: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)

    uploaded_by: Mapped[User] = relationship(lazy="joined")

    def __repr__(self) -> str:
        return f"<Attachment {self.id} {self.filename} {self.sha256[:12]}>"


# --- message subscriptions (revision 0010) ----------------------------------------


class MessageSubscription(Base):
    """The message projection: one row per message catch a running case waits at (an intermediate catch
    event, a receive task, a message boundary event, a branch of an event-based gateway), kept in step with
    the workflow as ``human_tasks`` is (see :mod:`engine.messages`). Correlating a message reads these rows,
    never the workflows."""

    __tablename__ = "message_subscriptions"
    __table_args__ = (Index("ix_message_subscriptions_name", "message_name", "instance_id"),
                      Index("ix_message_subscriptions_instance", "instance_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    message_name: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<MessageSubscription {self.instance_id} {self.message_name!r} at {self.element_id}>"
