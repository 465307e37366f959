"""Workflow state without the spec, and without the tasks that no longer matter.

SpiffWorkflow's serializer writes the whole process spec into every saved workflow
and rebuilds it on every load. deptflow stores only the task tree and data (the
registry of :func:`make_registry`, used by :class:`engine.core.WorkflowEngine`); the spec
comes from the per-version cache in :mod:`engine.definitions`. :func:`compact` moves the
finished part of a long tree to the ``task_archive`` table before a save.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.event_definition import MessageEventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.helpers.registry import DefaultRegistry
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition as CamundaMessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .call_activity import MappedCallActivity, MappedCallActivityConverter
from .clock import utcnow
from .db import TaskArchive

STATE_FORMAT = 1


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Like SpiffWorkflow's converter, minus ``spec`` and ``subprocess_specs``."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None, subprocess_specs: Any = None) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def make_registry() -> DefaultRegistry:
    """SpiffWorkflow's Camunda serializer registry, writing workflows without their spec."""
    config = dict(CAMUNDA_CONFIG)
    config[BpmnWorkflow] = StateOnlyWorkflowConverter
    config[MappedCallActivity] = MappedCallActivityConverter
    # message events are SpiffWorkflow's plain ones (engine.subscriptions); a state holds them where an event-based
    # gateway keeps the events it saw
    config.pop(CamundaMessageEventDefinition)
    config[MessageEventDefinition] = PlainMessageConverter
    return BpmnWorkflowSerializer.configure(config)


class PlainMessageConverter(MessageEventDefinitionConverter):
    """The plain message event; one that a state written before messages ran holds as Camunda's (its
    ``expression`` and ``result_var``, unused) comes back plain."""

    def from_dict(self, dct: dict[str, Any]) -> Any:
        dct.pop("expression", None)
        dct.pop("result_var", None)
        return super().from_dict(dct)


# --- compaction -------------------------------------------------------------------------
#
# SpiffWorkflow's task tree gains tasks at every loop iteration, and load, do_engine_steps and
# dump walk all of it: a case that went round a rework loop fifty times steps twice as slowly.
# Only the part of the tree around the unfinished tasks affects the run, so the rest moves to
# the append-only ``task_archive`` table and the live state stays small.

#: Compact only when at least this many tasks would leave the tree: one archive row every few
#: steps of a loop instead of one per step (an INSERT on the hot path), and never on short cases.
MIN_ARCHIVED = 12
#: Levels kept above the common ancestor of the unfinished tasks: joins and boundary events look
#: at their parent and grandparent, and the history page at the element before each task.
LEVELS_KEPT = 2
#: Tasks that can never run again (an ERROR task can be retried, so it stays live).
SETTLED = TaskState.COMPLETED | TaskState.CANCELLED


def archive(session: Session, instance_id: int, archived: dict[str, Any]) -> None:
    """Store tasks :func:`compact` cut off (a Core INSERT: this runs on every few completions)."""
    session.execute(insert(TaskArchive.__table__), [
        {"instance_id": instance_id, "archived_at": utcnow(), "tasks": archived}])


def compact(workflow: BpmnWorkflow, registry: DefaultRegistry) -> dict[str, Any] | None:
    """Cut long trees below a new root when worthwhile; return the serialized tasks cut off, or ``None``.

    The top-level tree first, then the tree of each subprocess still in the workflow (an embedded
    subprocess or call activity that loops grows its own tree): the same rules for each (see
    :func:`_cut`). What left the top level is under ``root``/``tasks``, the subprocesses run by
    archived tasks under ``subprocesses``, what left a subprocess's tree under ``subtrees``
    (subprocess id → ``root``, ``tasks``). A finished workflow is left whole: it never steps again,
    so compacting it would buy nothing.
    """
    if not any(not task.has_state(SETTLED) for task in workflow.tasks.values()):
        return None
    top = _cut(workflow, workflow, registry)
    archived: dict[str, Any] = {"root": None, "tasks": [], "subprocesses": {}, "subtrees": {}}
    if top is not None:
        archived["root"], archived["tasks"], archived["subprocesses"] = top
    for subprocess in sorted(workflow.subprocesses.values(), key=lambda sp: sp.depth):
        if workflow.subprocesses.get(subprocess.parent_task_id) is not subprocess:
            continue  # detached on the way with the task that ran it
        cut = _cut(subprocess, workflow, registry)
        if cut is not None:
            root, tasks, nested = cut
            archived["subtrees"][str(subprocess.parent_task_id)] = {"root": root, "tasks": tasks}
            archived["subprocesses"].update(nested)
    return archived if archived["tasks"] or archived["subtrees"] else None


def _cut(tree: Any, workflow: BpmnWorkflow, registry: DefaultRegistry) -> tuple[str, list, dict] | None:
    """Cut one task tree (the top level's or a subprocess's) below a new root when worthwhile.

    The new root is two levels above the common ancestor of every unfinished task of the tree and
    of its ``last_task``; the spine above it stays. Returns the new root's id, the serialized tasks
    cut off and the subprocesses they ran (detached from ``workflow``), or ``None``.
    """
    if len(tree.tasks) < MIN_ARCHIVED + LEVELS_KEPT + 1 or _triggers_from_root(tree):
        return None
    root = _new_root(tree, workflow)
    if root is None:
        return None
    spine = _spine(root)
    kept = _subtree_ids(root) | {task.id for task in spine}
    gone = [task for task in tree.tasks.values() if task.id not in kept]
    if len(gone) < MIN_ARCHIVED:
        return None
    tasks = [_serialized(task, registry) for task in gone]
    detached = _detach_subprocesses(workflow, [task.id for task in gone], registry)
    for task in gone:
        del tree.tasks[task.id]
    chain = [root, *spine]
    for child, parent in zip(chain, chain[1:], strict=False):
        if child._parent != parent.id:
            child.internal_data.setdefault(TRUE_PARENT, str(child._parent))
            child._parent = parent.id
        parent._children = [child.id]
    tree.task_tree = chain[-1]
    return str(root.id), tasks, detached


#: Where a task relinked onto the spine keeps the id of its real parent (for the history's path)
TRUE_PARENT = "deptflow_parent"


def _spine(root: Any) -> list[Any]:
    """The ancestors of ``root`` that stay above it: for each task spec, its nearest occurrence.

    SpiffWorkflow asks the ancestry questions "is there an ancestor of spec X" and "which is the
    nearest": a parallel gateway that merges a loop's return with the flow from before the loop
    counts its inputs by climbing to them (the first round's start event), and a structured join
    looks for its split. The nearest ancestor of each spec answers both as the whole tree would,
    in as many tasks as the process has elements.
    """
    spine, seen = [], {root.task_spec}
    node = root.parent
    while node is not None:
        if node.task_spec not in seen:
            seen.add(node.task_spec)
            spine.append(node)
        node = node.parent
    return spine


def _triggers_from_root(tree: Any) -> bool:
    """Message-started event subprocesses are added under the root, which must then stay the start."""
    return bool(getattr(tree.spec.start, "trigger_specs", None))


def _new_root(tree: Any, workflow: BpmnWorkflow) -> Any:
    """Two levels above the common ancestor of the unfinished tasks and ``last_task`` (None: keep all).

    A finished top level is left whole (see :func:`compact`); a finished subprocess of a running case
    is loaded and saved at every step of the case, so its tree is cut above its last task.
    """
    anchors = [task for task in tree.tasks.values() if not task.has_state(SETTLED)]
    if not anchors and tree is workflow:
        return None
    last = _own_task(tree, workflow, tree.last_task)
    if last is not None:
        anchors.append(last)
    if not anchors:
        return None
    node = _common_ancestor(anchors)
    for _ in range(LEVELS_KEPT):
        node = node.parent
        if node is None:
            return None
    return node if node is not tree.task_tree else None


def _own_task(tree: Any, workflow: BpmnWorkflow, task: Any) -> Any:
    """``task`` itself, or the task of ``tree`` that runs the subprocess it belongs to (None: not in ``tree``)."""
    while task is not None and task.workflow is not tree and task.workflow is not workflow:
        task = workflow.get_task_from_id(task.workflow.parent_task_id)
    return task if task is not None and task.id in tree.tasks else None


def _common_ancestor(tasks: list[Any]) -> Any:
    """The deepest task above (or equal to) all of ``tasks``: the first one's ancestors, climbed as others need."""
    chain = []
    node = tasks[0]
    while node is not None:
        chain.append(node)
        node = node.parent
    position = {task.id: i for i, task in enumerate(chain)}
    highest = 0
    for task in tasks[1:]:
        node = task
        while node.id not in position:
            node = node.parent
        highest = max(highest, position[node.id])
    return chain[highest]


def _subtree_ids(root: Any) -> set[UUID]:
    tasks = root.workflow.tasks
    kept, pending = set(), [root.id]
    while pending:
        task_id = pending.pop()
        kept.add(task_id)
        pending.extend(tasks[task_id]._children)
    return kept


def _serialized(task: Any, registry: DefaultRegistry) -> dict[str, Any]:
    """SpiffWorkflow's own form of the task (restorable), plus its BPMN element for readers."""
    dct = registry.convert(task)
    dct["bpmn_id"] = getattr(task.task_spec, "bpmn_id", None)
    return dct


def _detach_subprocesses(workflow: BpmnWorkflow, task_ids: list[UUID],
                         registry: DefaultRegistry) -> dict[str, Any]:
    """Take the subprocesses run by archived tasks (and those nested in them) out of the workflow."""
    detached: dict[str, Any] = {}
    pending = [task_id for task_id in task_ids if task_id in workflow.subprocesses]
    while pending:
        subprocess = workflow.subprocesses.pop(pending.pop())
        dct = registry.convert(subprocess)
        for task_id, task_dct in dct["tasks"].items():
            task_dct["bpmn_id"] = getattr(subprocess.tasks[UUID(task_id)].task_spec, "bpmn_id", None)
        detached[str(subprocess.parent_task_id)] = dct
        pending.extend(task_id for task_id in subprocess.tasks if task_id in workflow.subprocesses)
    return detached


def archived_tasks(session: Session, instance_id: int) -> list[dict[str, Any]]:
    """Every task compacted out of the instance, oldest first, subprocesses' tasks included.

    Each is SpiffWorkflow's serialized task plus ``bpmn_id``; a task cut loose as a root has
    ``parent`` None and is found in the ``children`` of an earlier archived task. Rows written
    before subprocess trees were compacted have no ``subtrees``.
    """
    rows = session.scalars(select(TaskArchive.tasks).where(TaskArchive.instance_id == instance_id)
                           .order_by(TaskArchive.id))
    found: list[dict[str, Any]] = []
    for archived in rows:
        found.extend(archived["tasks"])
        for subprocess in archived["subprocesses"].values():
            found.extend(subprocess["tasks"].values())
        for subtree in archived.get("subtrees", {}).values():
            found.extend(subtree["tasks"])
    return found
