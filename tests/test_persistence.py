"""Saved workflow state: a case that loops for long keeps a small state, its past goes to the archive.

SpiffWorkflow's task tree gains tasks at every loop iteration; :func:`engine.persistence.compact`
moves the settled part of a long tree to ``task_archive``. These tests drive cases through the
public engine API and check that nothing a reader needs is lost on the way.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select

from engine import actions, audit, core, definitions, history, instance_migration, modeling, persistence, running
from engine.db import HumanTask, Process, ProcessInstance, TaskArchive

DATA = Path(__file__).parent / "data"
MINI = (DATA / "mini_approval.bpmn").read_text()
MINI_V2 = (DATA / "mini_approval_v2.bpmn").read_text()  # renamed approval, then the clerk files the request
REJECTIONS = 30
#: the kept subtree (a handful of tasks) plus fewer than MIN_ARCHIVED settled ones waiting for the next compaction
LIVE_TASKS_BOUND = persistence.MIN_ARCHIVED + 10
#: a loop round an embedded subprocess: SpiffWorkflow keeps one subprocess workflow per round
SUB_LOOP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_sub" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="sub_loop" name="Sub loop" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_sales_rep" name="Sales representative">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>sub</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>decided</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Request">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="title" label="Title" type="string" />
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:subProcess id="sub" name="Sub">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:incoming>f3</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:startEvent id="sub_start"><bpmn:outgoing>s1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:userTask id="inner" name="Inner" camunda:candidateGroups="sales_rep">
        <bpmn:extensionElements>
          <camunda:formData>
            <camunda:formField id="decision" label="Decision" type="enum">
              <camunda:value id="approve" name="Approve" />
              <camunda:value id="reject" name="Reject" />
            </camunda:formField>
          </camunda:formData>
        </bpmn:extensionElements>
        <bpmn:incoming>s1</bpmn:incoming>
        <bpmn:outgoing>s2</bpmn:outgoing>
      </bpmn:userTask>
      <bpmn:endEvent id="sub_end"><bpmn:incoming>s2</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="s1" sourceRef="sub_start" targetRef="inner" />
      <bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="sub_end" />
    </bpmn:subProcess>
    <bpmn:exclusiveGateway id="decided" name="Approved?" default="f3">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sub" />
    <bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="decided" />
    <bpmn:sequenceFlow id="f3" sourceRef="decided" targetRef="sub" />
    <bpmn:sequenceFlow id="f4" sourceRef="decided" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == 'approve'</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
  </bpmn:process>
</bpmn:definitions>"""


@pytest.fixture
def mini(session, user):
    modeling.publish(session, user("owen"), MINI, note="first")
    session.commit()


def _start(session, user) -> ProcessInstance:
    started = actions.start_process(session, user("steve"), "mini_approval", {"title": "New van", "amount": "5"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    return instance


def _decide(session, user, instance: ProcessInstance, decision: str) -> None:
    task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == "open"))
    actions.complete_task(session, user("mark"), task_id, {"decision": decision})
    session.commit()


def _state(session, instance: ProcessInstance) -> str:
    return session.scalar(select(ProcessInstance.state).where(ProcessInstance.id == instance.id))


def _live_tasks(session, instance: ProcessInstance) -> int:
    session.refresh(instance)
    return len(running.RunningInstance.open(session, instance.id).workflow.tasks)


def _archive_rows(session, instance: ProcessInstance) -> int:
    return session.scalar(select(func.count()).select_from(TaskArchive).where(TaskArchive.instance_id == instance.id))


def _rejected(session, user, times: int) -> tuple[ProcessInstance, list[int]]:
    """A case sent back ``times`` times, with the size of its saved state after each step."""
    instance = _start(session, user)
    sizes = []
    for _ in range(times):
        _decide(session, user, instance, "reject")
        sizes.append(len(_state(session, instance)))
    return instance, sizes


def test_a_long_rework_loop_keeps_a_small_state_and_completes_with_its_data(session, user, mini):
    instance, sizes = _rejected(session, user, REJECTIONS)
    assert _archive_rows(session, instance) >= 2
    assert _live_tasks(session, instance) <= LIVE_TASKS_BOUND
    assert max(sizes[10:]) <= 2 * sizes[2], sizes  # the state no longer grows with the history

    _decide(session, user, instance, "approve")
    session.refresh(instance)
    assert instance.status == "completed" and instance.ended_at is not None
    assert instance.data == {"title": "New van", "amount": 5, "decision": "approve"}
    completed = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)
                                .order_by(HumanTask.id)).all()
    assert [t.submitted for t in completed] == [{"decision": "reject"}] * REJECTIONS + [{"decision": "approve"}]
    assert audit.verify(session).ok


def test_without_compaction_the_same_loop_grows(session, user, mini, monkeypatch):
    """The bound above means something: the uncompacted tree of the same case is far larger."""
    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 10**9)
    instance, sizes = _rejected(session, user, REJECTIONS)
    assert _archive_rows(session, instance) == 0
    assert _live_tasks(session, instance) > 2 * LIVE_TASKS_BOUND and sizes[-1] > 3 * sizes[2]


def test_short_cases_are_not_compacted(session, user, mini):
    """No archive INSERT on the hot path of an ordinary case."""
    instance, _sizes = _rejected(session, user, 3)
    _decide(session, user, instance, "approve")
    assert _archive_rows(session, instance) == 0


def test_every_task_cut_from_the_tree_is_in_the_archive_once(session, user, mini):
    instance, _sizes = _rejected(session, user, REJECTIONS)
    archived = persistence.archived_tasks(session, instance.id)
    session.refresh(instance)
    live = running.RunningInstance.open(session, instance.id).workflow.tasks
    archived_ids = [t["id"] for t in archived]
    assert len(archived_ids) == len(set(archived_ids)) and not set(archived_ids) & {str(i) for i in live}
    assert all(t["state"] in (TaskState.COMPLETED, TaskState.CANCELLED) for t in archived)  # nothing can run
    approvals = [t for t in archived if t["bpmn_id"] == "approve_request"]
    live_done = [t for t in live.values() if t.task_spec.name == "approve_request" and t.state == TaskState.COMPLETED]
    assert len(approvals) + len(live_done) == REJECTIONS
    live_starts = [t for t in live.values() if getattr(t.task_spec, "bpmn_id", None) == "start"]
    assert Counter(t["bpmn_id"] for t in archived)["start"] + len(live_starts) == 1  # kept on the spine


def test_the_history_marks_the_same_path_with_and_without_compaction(session, user, mini, monkeypatch):
    compacted, _sizes = _rejected(session, user, REJECTIONS)
    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 10**9)
    whole, _sizes = _rejected(session, user, REJECTIONS)
    assert _archive_rows(session, compacted) >= 2 and _archive_rows(session, whole) == 0

    def path(instance: ProcessInstance) -> tuple[list[str], list[str], list[str]]:
        h = history.instance_history(session, user("steve"), instance.id)
        return h.completed_elements, h.active_elements, h.taken_flows

    session.refresh(compacted)
    live = running.RunningInstance.open(session, compacted.id).workflow.tasks.values()
    live_approvals = [t for t in live if getattr(t.task_spec, "bpmn_id", None) == "approve_request"]
    assert len(live_approvals) < REJECTIONS / 2  # most rounds only the archive knows
    assert path(compacted) == path(whole) == (["approve_request", "decided", "start"], ["approve_request"],
                                              ["f1", "f2", "f3"])
    _decide(session, user, compacted, "approve")
    _decide(session, user, whole, "approve")
    assert path(compacted) == path(whole) == (["approve_request", "decided", "end", "start"], [],
                                              ["f1", "f2", "f3", "f4"])


def test_a_compacted_case_moves_to_a_new_version_and_finishes_there(session, user, mini):
    instance, _sizes = _rejected(session, user, REJECTIONS)
    assert _archive_rows(session, instance) >= 2
    modeling.publish(session, user("owen"), MINI_V2)
    session.commit()
    [check] = instance_migration.migration_preview(session, user("owen"), "mini_approval", 1).checks
    assert check.ok and check.open_tasks == ["Approve request"]
    instance_migration.migrate_instance(session, user("owen"), instance.id)
    session.commit()

    session.refresh(instance)
    assert instance.definition.version == 2
    _decide(session, user, instance, "approve")
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                   HumanTask.status == "open")).one()
    assert task.element_id == "file_request"
    actions.complete_task(session, user("clara"), task.id, {})
    session.commit()
    session.refresh(instance)
    assert instance.status == "completed" and instance.data["decision"] == "approve"
    h = history.instance_history(session, user("steve"), instance.id)
    assert h.completed_elements == ["approve_request", "decided", "end", "file_request", "start"]
    assert {"f1", "f3", "f4", "f5"} <= set(h.taken_flows)


def test_a_compacted_state_loads_back_to_the_same_state(session, user, mini):
    instance, _sizes = _rejected(session, user, REJECTIONS)
    state = _state(session, instance)
    parsed = definitions.parsed(session, instance.definition)
    engine = core.of(session)
    assert engine.dump(engine.load(state, parsed)) == state


def test_subprocesses_of_archived_rounds_go_to_the_archive_with_their_tasks(session, user, monkeypatch):
    definitions.deploy(session, None, SUB_LOOP)
    session.commit()

    def run(rounds: int) -> tuple[ProcessInstance, tuple]:
        started = actions.start_process(session, user("steve"), "sub_loop", {"title": "Loop"})
        instance = session.get(ProcessInstance, started.id)
        session.commit()
        for n in range(rounds + 1):
            task_id = session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance.id,
                                                                HumanTask.status == "open"))
            actions.complete_task(session, user("steve"), task_id, {"decision": "reject" if n < rounds else "approve"})
            session.commit()
        session.refresh(instance)
        h = history.instance_history(session, user("steve"), instance.id)
        return instance, (instance.status, instance.data, h.completed_elements, h.taken_flows)

    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 1)  # compact at (nearly) every step
    compacted, outcome = run(12)
    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 10**9)
    _whole, whole_outcome = run(12)
    assert outcome == whole_outcome == ("completed", {"title": "Loop", "decision": "approve"},
                                        ["decided", "end", "inner", "start", "sub", "sub_end", "sub_start"],
                                        ["f1", "f2", "f3", "f4", "s1", "s2"])
    rows = session.scalars(select(TaskArchive.tasks).where(TaskArchive.instance_id == compacted.id)).all()
    live = running.RunningInstance.open(session, compacted.id).workflow.subprocesses
    assert sum(len(row["subprocesses"]) for row in rows) + len(live) == 13 and len(live) <= 3  # one per round


# --- a loop inside a subprocess: the subprocess's own tree is compacted --------------------

SUBPROCESS_LOOP = (DATA / "diff_subprocess_loop.bpmn").read_text()  # rework_start → work ⇄ work_done → rework_end
SUB_ROUNDS = 100


@pytest.fixture
def subprocess_loop(session):
    definitions.deploy(session, None, SUBPROCESS_LOOP)
    session.flush()
    session.get(Process, "diff_subprocess_loop").starter_roles = ["sales_rep"]
    session.commit()


def _start_subprocess_loop(session, user) -> ProcessInstance:
    started = actions.start_process(session, user("steve"), "diff_subprocess_loop", {"title": "Loop"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    return instance


def _work(session, user, instance: ProcessInstance, decision: str) -> None:
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                   HumanTask.status == "open")).one()
    actions.complete_task(session, user("steve" if task.element_id == "work" else "clara"), task.id,
                          {"decision": decision, "hours": 1.5} if task.element_id == "work" else {})
    session.commit()


def _went_round(session, user, rounds: int) -> tuple[ProcessInstance, dict[int, int]]:
    """A case whose subprocess went ``rounds`` times round its loop, with the saved state's size after each."""
    instance = _start_subprocess_loop(session, user)
    sizes = {}
    for n in range(1, rounds + 1):
        _work(session, user, instance, "again")
        sizes[n] = len(_state(session, instance))
    return instance, sizes


def _subprocess_tasks(session, instance: ProcessInstance) -> int:
    workflow = running.RunningInstance.open(session, instance.id).workflow
    return sum(len(sp.tasks) for sp in workflow.subprocesses.values())


def test_a_loop_inside_a_subprocess_keeps_a_small_state(session, user, subprocess_loop):
    instance, sizes = _went_round(session, user, SUB_ROUNDS)
    assert sizes[SUB_ROUNDS] <= 1.5 * sizes[10], (sizes[10], sizes[SUB_ROUNDS])
    assert max(sizes[n] for n in range(10, SUB_ROUNDS + 1)) <= 1.5 * sizes[10]
    assert _subprocess_tasks(session, instance) <= LIVE_TASKS_BOUND
    rows = session.scalars(select(TaskArchive.tasks).where(TaskArchive.instance_id == instance.id)).all()
    assert rows and all(set(row["subtrees"]) == {str(sp)} for row in rows
                        for sp in running.RunningInstance.open(session, instance.id).workflow.subprocesses)
    archived = persistence.archived_tasks(session, instance.id)
    live = [t for sp in running.RunningInstance.open(session, instance.id).workflow.subprocesses.values()
            for t in sp.tasks.values()]
    assert {t["state"] for t in archived} <= {TaskState.COMPLETED, TaskState.CANCELLED}
    assert not {t["id"] for t in archived} & {str(t.id) for t in live}
    live_work = [t for t in live if t.task_spec.name == "work" and t.state == TaskState.COMPLETED]
    assert Counter(t["bpmn_id"] for t in archived)["work"] + len(live_work) == SUB_ROUNDS  # every round once

    _work(session, user, instance, "done")
    _work(session, user, instance, "")
    session.refresh(instance)
    assert instance.status == "completed"
    assert instance.data == {"title": "Loop", "decision": "done", "hours": 1.5}
    assert audit.verify(session).ok


def test_without_compaction_the_subprocess_loop_grows(session, user, subprocess_loop, monkeypatch):
    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 10**9)
    instance, sizes = _went_round(session, user, 30)
    assert _archive_rows(session, instance) == 0
    assert sizes[30] > 2 * sizes[10] and _subprocess_tasks(session, instance) > 2 * LIVE_TASKS_BOUND


def test_the_history_of_a_subprocess_loop_is_the_same_with_and_without_compaction(session, user, subprocess_loop,
                                                                                  monkeypatch):
    compacted, _sizes = _went_round(session, user, REJECTIONS)
    monkeypatch.setattr(persistence, "MIN_ARCHIVED", 10**9)
    whole, _sizes = _went_round(session, user, REJECTIONS)
    assert _archive_rows(session, compacted) >= 2 and _archive_rows(session, whole) == 0
    assert _subprocess_tasks(session, compacted) < REJECTIONS  # most rounds only the archive knows

    def path(instance: ProcessInstance) -> tuple[list[str], list[str], list[str]]:
        h = history.instance_history(session, user("steve"), instance.id)
        return h.completed_elements, h.active_elements, h.taken_flows

    assert path(compacted) == path(whole) == (["rework_start", "start", "work", "work_done"], ["rework", "work"],
                                              ["f1", "s1", "s2", "s3"])
    for instance in (compacted, whole):
        _work(session, user, instance, "done")
    assert path(compacted) == path(whole) == (
        ["rework", "rework_end", "rework_start", "start", "work", "work_done"], ["file"],
        ["f1", "f2", "s1", "s2", "s3", "s4"])
    for instance in (compacted, whole):
        _work(session, user, instance, "")
    assert path(compacted) == path(whole)
    assert path(compacted)[:2] == (["end", "file", "rework", "rework_end", "rework_start", "start", "work",
                                    "work_done"], [])


def test_archive_rows_from_before_subtrees_are_still_read(session, user, mini):
    """Rows written before subprocess trees were compacted have no ``subtrees``."""
    instance, _sizes = _rejected(session, user, REJECTIONS)
    rows = session.scalars(select(TaskArchive).where(TaskArchive.instance_id == instance.id)).all()
    for row in rows:
        row.tasks = {key: value for key, value in row.tasks.items() if key != "subtrees"}
    session.commit()
    assert all("subtrees" not in row.tasks for row in session.scalars(select(TaskArchive)))
    approvals = [t for t in persistence.archived_tasks(session, instance.id) if t["bpmn_id"] == "approve_request"]
    assert len(approvals) > REJECTIONS / 2
    h = history.instance_history(session, user("steve"), instance.id)
    assert h.completed_elements == ["approve_request", "decided", "start"] and h.taken_flows == ["f1", "f2", "f3"]
