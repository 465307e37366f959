"""Moving running cases to a newer version of their process.

Running instances stay on their version until a process owner migrates them, which SpiffWorkflow's
diff/migrate helpers do only when every active task of the instance still exists in the new
version. :func:`migration_preview` says which open cases of a version can move and what blocks the
others; :func:`migrate_instance` moves one case, :func:`migrate_instances` every case that can move.

Every function takes the caller's session and writes through it; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, core
from . import definitions as defs
from .actions import record_step
from .db import HumanTask, ProcessDefinition, ProcessInstance, User
from .errors import Conflict
from .inbox import RESOLVED, set_candidates
from .owners import check_owner
from .process_versions import definition_by_version
from .running import RunningInstance
from .vocabulary import EventKind, InstanceStatus, TaskStatus

#: Instance states that migration may touch (finished cases stay on their version for good).
MIGRATABLE = (InstanceStatus.RUNNING, InstanceStatus.SUSPENDED, InstanceStatus.INCIDENT)
#: Task states that hold a case's position: a task here must exist in the target version.
ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR


@dataclass
class BlockingTask:
    element_id: str
    name: str
    state: str
    reason: str

    def __str__(self) -> str:
        return f"“{self.name}” ({self.element_id}, {self.state}): {self.reason}"


@dataclass
class MigrationCheck:
    instance: ProcessInstance
    blocking: list[BlockingTask]
    open_tasks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.blocking


class MigrationRefused(Conflict):
    """An instance cannot move to the new version; ``blocking`` says which of its tasks are in the way."""

    def __init__(self, instance: ProcessInstance, target: ProcessDefinition, blocking: list[BlockingTask]):
        self.instance = instance
        self.blocking = blocking
        lines = "; ".join(str(b) for b in blocking)
        super().__init__(f"“{instance.title}” cannot move to version {target.version}: {lines}")


def _spec_type(registry: Any, spec: Any) -> str | None:
    try:
        return registry.convert(spec).get("typename")
    except Exception:  # noqa: BLE001 - an unconvertible spec simply counts as a different type
        return None


def _plan(running: RunningInstance, target: defs.ParsedDefinition, version: int, registry: Any) -> tuple[
        Any, dict, list[BlockingTask]]:
    """SpiffWorkflow's diff of the instance against ``target`` and the tasks that block moving it."""
    top_diff, sp_diffs = diff_workflow(registry, running.workflow, target.spec, target.subprocess_specs)
    blocking: list[BlockingTask] = []

    def check(workflow: Any, diff: Any) -> None:
        for task in workflow.get_tasks(skip_subprocesses=True):
            spec = task.task_spec
            element = getattr(spec, "bpmn_id", None)
            if element is None:  # Root, Start, End: SpiffWorkflow's own bookkeeping tasks
                continue
            name = getattr(spec, "bpmn_name", None) or element
            state = TaskState.get_name(task.state).lower()
            aligned = diff.alignment.get(task) if diff is not None else None
            if aligned is None:
                if task.has_state(ACTIVE):
                    blocking.append(BlockingTask(element, name, state, f"does not exist in version {version}"))
                elif task.has_state(TaskState.FINISHED_MASK):  # its state would no longer load
                    blocking.append(BlockingTask(element, name, state, f"done already, but removed in version "
                                                 f"{version}: the case's history would lose it"))
            elif task.has_state(ACTIVE) and _spec_type(registry, spec) != _spec_type(registry, aligned):
                blocking.append(BlockingTask(element, name, state, f"is a different kind of step in version {version}"))

    check(running.workflow, top_diff)
    for sp_id, sp in running.workflow.subprocesses.items():
        check(sp, sp_diffs.get(sp_id))
    return top_diff, sp_diffs, blocking


def _target(session: Session, instance: ProcessInstance, to_version: int | None) -> ProcessDefinition:
    target = (definition_by_version(session, instance.process_key, to_version) if to_version
              else defs.latest_definition(session, instance.process_key))
    if target.version <= instance.definition.version:
        raise Conflict(f"“{instance.title}” is on version {instance.definition.version} already; "
                       f"it can only move to a newer version.")
    return target


def check_migration(session: Session, instance: ProcessInstance, target: ProcessDefinition) -> MigrationCheck:
    """Whether ``instance`` can move to ``target``, without changing anything."""
    running = RunningInstance.open(session, instance.id)
    _top, _sps, blocking = _plan(running, defs.parsed(session, target), target.version, core.of(session).serializer)
    open_tasks = [t.task_spec.bpmn_name or t.task_spec.bpmn_id
                  for t in running.workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
                  if getattr(t.task_spec, "bpmn_id", None) and t.task_spec.manual]
    return MigrationCheck(instance, blocking, open_tasks)


@dataclass
class MigrationPreview:
    source: ProcessDefinition
    target: ProcessDefinition
    checks: list[MigrationCheck]

    @property
    def movable(self) -> list[MigrationCheck]:
        return [c for c in self.checks if c.ok]


def migration_preview(session: Session, actor: User | None, process_key: str, from_version: int,
                      to_version: int | None = None) -> MigrationPreview:
    """Every open case of ``from_version`` with what would block moving it to ``to_version`` (default: latest)."""
    check_owner(actor)
    source = definition_by_version(session, process_key, from_version)
    target = (definition_by_version(session, process_key, to_version) if to_version
              else defs.latest_definition(session, process_key))
    if target.version <= source.version:
        raise Conflict(f"Version {source.version} is the latest; there is nothing to move its cases to.")
    instances = session.scalars(select(ProcessInstance).where(
        ProcessInstance.definition_id == source.id, ProcessInstance.status.in_(MIGRATABLE)
    ).order_by(ProcessInstance.id))
    return MigrationPreview(source, target, [check_migration(session, i, target) for i in instances])


def migrate_instance(session: Session, actor: User | None, instance_id: int,
                     to_version: int | None = None) -> ProcessInstance:
    """Move a running (or suspended) instance to a newer version of its process (default: the latest).

    Every active task must exist in the target version (SpiffWorkflow aligns tasks by element id,
    then by position in the graph). Ready tasks are re-predicted on the new diagram and their inbox
    rows keep their claim but take the new name, priority and roles; waiting timers keep their due
    time. The move is an audit event ``migrated`` of the instance.

    :raises MigrationRefused: with the blocking tasks; the instance is left as it was
    """
    check_owner(actor)
    engine = core.of(session)
    running = RunningInstance.open(session, instance_id)
    row = running.row
    instance = session.get(ProcessInstance, instance_id)
    if row.status not in MIGRATABLE:
        raise Conflict(f"The case is {row.status}; only open cases move to a new version.")
    target = _target(session, instance, to_version)
    source = instance.definition
    parsed = defs.parsed(session, target)
    top_diff, sp_diffs, blocking = _plan(running, parsed, target.version, engine.serializer)
    if blocking:
        raise MigrationRefused(instance, target, blocking)

    workflow = running.workflow
    # Only ready tasks are re-predicted on the new diagram: waiting ones (timers, joins) keep their state,
    # so a running timer keeps its due time instead of starting over.
    migrate_workflow(top_diff, workflow, parsed.spec, reset_mask=TaskState.READY)
    for sp_id, sp in workflow.subprocesses.items():
        sp_spec = parsed.subprocess_specs.get(sp.spec.name)
        if sp_diffs.get(sp_id) is not None and sp_spec is not None:
            migrate_workflow(sp_diffs[sp_id], sp, sp_spec, reset_mask=TaskState.READY)
    workflow.subprocess_specs = parsed.subprocess_specs
    try:  # the saved state must load on the new version, or nothing changes
        engine.load(engine.dump(workflow), parsed)
    except Exception as exc:  # noqa: BLE001 - any failure to reload refuses the move
        raise MigrationRefused(instance, target, [BlockingTask(
            parsed.process_id, parsed.name, "state", f"the migrated state does not load: {exc}")]) from None

    row.definition_id = target.id
    moved = RunningInstance(row, workflow, parsed)
    moved.forget_subscriptions()  # its catches may be other elements now
    audit.record(session, EventKind.MIGRATED, instance=row, actor=actor, element_id=parsed.process_id,
                 name=f"version {source.version} → version {target.version}",
                 **{"from": source.version, "to": target.version, "from_sha256": source.sha256,
                    "to_sha256": target.sha256})
    if row.status == InstanceStatus.RUNNING:
        moved.run()
    record_step(session, moved, moved.save(session, definition_id=target.id))
    _refresh_open_tasks(session, row.id, moved)
    session.flush()
    session.refresh(instance)
    return instance


def _refresh_open_tasks(session: Session, instance_id: int, moved: RunningInstance) -> None:
    """Open inbox rows follow the new version: element id, name, priority, roles."""
    by_id = {str(t.id): t for t in moved.workflow.get_tasks(state=TaskState.READY, manual=True)}
    rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                   HumanTask.status == TaskStatus.OPEN))
    for row in rows:
        task = by_id.get(row.spiff_task_id)
        if task is None:
            continue
        row.element_id = task.task_spec.bpmn_id
        row.name = task.task_spec.bpmn_name or row.element_id
        info = moved.definition.user_tasks.get(row.element_id)
        if info is None:
            continue
        if info.priority is not None:
            row.priority = info.priority
        # candidate groups from a JUEL expression were resolved when the task became ready (or by the save above)
        roles = task.internal_data.get(RESOLVED, {}).get("roles", info.candidate_roles)
        if sorted(roles) != sorted(row.candidate_roles):
            row.candidate_roles = list(roles)
            set_candidates(session, [row])
            if row.assignee is not None and not row.assignee.role_keys & set(roles):
                audit.record(session, EventKind.UNCLAIMED, instance=moved.row, task=row,
                             reason="role changed by migration",
                             former_assignee=row.assignee.username)
                row.assignee_id, row.assignee, row.claimed_at = None, None, None


@dataclass
class MigrationResult:
    source: ProcessDefinition
    target: ProcessDefinition
    migrated: list[ProcessInstance]
    refused: list[MigrationCheck]


def migrate_instances(session: Session, actor: User | None, process_key: str, from_version: int,
                      to_version: int | None = None) -> MigrationResult:
    """Move every open case of ``from_version`` that can move; list the others with their blocking tasks."""
    preview = migration_preview(session, actor, process_key, from_version, to_version)
    migrated, refused = [], [c for c in preview.checks if not c.ok]
    for check in preview.movable:
        try:
            migrated.append(migrate_instance(session, actor, check.instance.id, preview.target.version))
        except MigrationRefused as exc:
            refused.append(MigrationCheck(check.instance, exc.blocking, check.open_tasks))
    return MigrationResult(preview.source, preview.target, migrated, refused)
