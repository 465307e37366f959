"""deptflow behaves as SpiffWorkflow does: random walks through every diagram, compared step by step.

See :mod:`tests.differential`. Hypothesis picks the task, the form values and the clock moves; a walk
may first repeat each task's values (a rework choice then keeps the case going round its loop, so
that compaction happens again and again), half the walks compact at nearly every step.
``DEPTFLOW_DIFFERENTIAL_EXAMPLES=500`` runs many more walks than CI's few per diagram.
"""

from __future__ import annotations

import os

import pytest
from differential import Divergence, HypothesisChooser, RandomChooser, Walk, all_diagrams, corpus_files, deploy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from SpiffWorkflow.util.task import TaskState

from engine import persistence
from engine.db import make_engine
from engine.validation import check_file, files_resolver
from workflows.catalogue import PROCESSES, ROLES

EXAMPLES = int(os.environ.get("DEPTFLOW_DIFFERENTIAL_EXAMPLES", "6"))
LONG = EXAMPLES > 50
DIAGRAMS = all_diagrams()
RUNNABLE = [d for d in DIAGRAMS if not d.refused]
#: Diagrams the engine refuses at deploy, and why: not run, not counted as passing.
REFUSED = {
    "tests/data/diff_call_other_process.bpmn": "Process diff_called is not executable",
}
#: Diagrams on which deptflow still differs from SpiffWorkflow, and how (strict xfail: a fix must remove them).
DIVERGING = {
    "tests/data/diff_parallel_join_loop.bpmn":
        "SpiffWorkflow's parallel join counts a branch of an earlier round as arrived (a cancelled join task "
        "whose parent completed), so from the second round it fires after one branch; deptflow archived those "
        "rounds and waits for both, as BPMN says",
}


def _sessions(url: str, workflow_engine):
    return workflow_engine.session_factory(make_engine(url))


def _marks(diagram):
    reason = DIVERGING.get(diagram.file)
    return [pytest.mark.xfail(reason=reason, raises=Divergence, strict=True)] if reason else []


def test_refused_diagrams_are_listed_with_their_reason():
    refused = {d.file: d.refused for d in DIAGRAMS if d.refused}
    for file, reason in refused.items():
        print(f"refused at deploy, not run: {file}: {reason}")
    assert set(refused) == set(REFUSED)
    for file, why in REFUSED.items():
        assert why in refused[file]


def test_every_corpus_file_that_deploys_is_driven_too(corpus):
    """The shared corpus's files that ``deptflow check`` says deploy (with the demo roles, calls resolved among
    the corpus's files) are walked like the others."""
    files = corpus_files()
    contents = {path: path.read_bytes() for path in files}
    resolve = files_resolver({str(path): content for path, content in contents.items()})
    roles = {role.key: role.name for role in ROLES}
    deploys = {f"corpus/{path.relative_to(corpus)}" for path, content in contents.items()
               if check_file(content, roles, resolve).verdict == "deploys"}
    driven = {d.file for d in RUNNABLE if d.file.startswith("corpus/")}
    print(f"\ncorpus: {len(driven)} of {len(files)} files deploy and are walked: {sorted(driven)}")
    assert deploys and deploys <= driven


def test_every_diagram_is_run():
    assert {d.file for d in RUNNABLE} | {d.file for d in DIAGRAMS if d.refused} == {d.file for d in DIAGRAMS}
    assert len([d for d in RUNNABLE if d.shipped]) == len(PROCESSES) and len(RUNNABLE) >= 20


@pytest.mark.parametrize("diagram", [pytest.param(d, id=d.name) for d in RUNNABLE if d.file not in DIVERGING])
def test_random_walks_agree(diagram, sqlite_url, workflow_engine, now):
    sessions = _sessions(sqlite_url, workflow_engine)
    deploy(sessions, diagram)
    start = now.now

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(data=st.data(), sticky=st.integers(0, 150 if LONG else 60), eager=st.booleans())
    def walk(data, sticky, eager):
        now.now = start
        original = persistence.MIN_ARCHIVED
        persistence.MIN_ARCHIVED = 1 if eager else original  # compact at (nearly) every step
        try:
            Walk(sessions, diagram, now, HypothesisChooser(data, sticky), max_steps=sticky + 30).run()
        finally:
            persistence.MIN_ARCHIVED = original

    walk()


@pytest.mark.parametrize("diagram", [pytest.param(d, id=d.name, marks=_marks(d)) for d in RUNNABLE
                                     if d.file in DIVERGING])
def test_known_divergences_still_diverge(diagram, sqlite_url, workflow_engine, now):
    """Seeded walks (no shrinking) through the diagrams listed in DIVERGING: strict xfail, never a pass."""
    sessions = _sessions(sqlite_url, workflow_engine)
    deploy(sessions, diagram)
    for seed in range(6):
        Walk(sessions, diagram, now, RandomChooser(seed, sticky=40), max_steps=60).run()


LOOPS = ["bpmn/marketing_plan_approval.bpmn", "bpmn/dealer_audit.bpmn", "tests/data/diff_subprocess_loop.bpmn",
         "tests/data/diff_boundary_loop.bpmn", "tests/data/diff_multi_instance_loop.bpmn",
         "tests/data/diff_call_loop.bpmn"]


@pytest.mark.parametrize("file", LOOPS)
def test_long_walks_round_the_loops_agree(file, sqlite_url, workflow_engine, now):
    """More than 100 steps through a rework loop: compaction happens many times on the way."""
    diagram = next(d for d in RUNNABLE if d.file == file)
    sessions = _sessions(sqlite_url, workflow_engine)
    deploy(sessions, diagram)
    longest = 0
    for seed in range(12):
        walk = Walk(sessions, diagram, now, RandomChooser(seed, sticky=110), max_steps=130).run()
        longest = max(longest, walk.steps)
        if longest > 100:
            break
    assert longest > 100


@pytest.mark.postgres
@pytest.mark.parametrize("file", ["bpmn/marketing_plan_approval.bpmn", "tests/data/diff_boundary_loop.bpmn"])
def test_walks_agree_on_postgresql(file, postgres_url, workflow_engine, now):
    diagram = next(d for d in RUNNABLE if d.file == file)
    sessions = _sessions(postgres_url, workflow_engine)
    deploy(sessions, diagram)
    for seed in range(3):
        Walk(sessions, diagram, now, RandomChooser(seed, sticky=40), max_steps=60).run()


# --- the harness can fail ----------------------------------------------------------------

MARKETING = "bpmn/marketing_plan_approval.bpmn"


def _broken_walk(sqlite_url, workflow_engine, now, monkeypatch, breakage) -> None:
    real = persistence.compact

    def broken(workflow, registry):
        archived = real(workflow, registry)
        if archived is not None:
            breakage(workflow)
        return archived

    monkeypatch.setattr(persistence, "compact", broken)
    diagram = next(d for d in RUNNABLE if d.file == MARKETING)
    sessions = _sessions(sqlite_url, workflow_engine)
    for seed in range(5):
        Walk(sessions, diagram, now, RandomChooser(seed, sticky=60), max_steps=80).run()


def test_a_compaction_that_drops_data_is_caught(sqlite_url, workflow_engine, now, monkeypatch):
    def drop_data(workflow):
        for task in workflow.tasks.values():
            task.data.pop("title", None)

    with pytest.raises(Divergence, match="data"):
        _broken_walk(sqlite_url, workflow_engine, now, monkeypatch, drop_data)


def test_a_compaction_that_archives_an_unfinished_task_is_caught(sqlite_url, workflow_engine, now, monkeypatch):
    def archive_a_ready_task(workflow):
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if ready:
            task = ready[0]
            task.parent._children.remove(task.id)
            del workflow.tasks[task.id]

    with pytest.raises(Divergence):
        _broken_walk(sqlite_url, workflow_engine, now, monkeypatch, archive_a_ready_task)


def test_a_subprocess_compaction_that_drops_data_is_caught(sqlite_url, workflow_engine, now, monkeypatch):
    """Subprocess trees are compacted too (issue 21): a broken cut of one is seen."""
    real = persistence.compact

    def broken(workflow, registry):
        archived = real(workflow, registry)
        if archived is not None and archived.get("subtrees"):
            for subprocess in workflow.subprocesses.values():
                for task in subprocess.tasks.values():
                    task.data.pop("title", None)
        return archived

    monkeypatch.setattr(persistence, "compact", broken)
    diagram = next(d for d in RUNNABLE if d.file == "tests/data/diff_subprocess_loop.bpmn")
    sessions = _sessions(sqlite_url, workflow_engine)
    deploy(sessions, diagram)
    with pytest.raises(Divergence, match="data"):
        for seed in range(5):
            Walk(sessions, diagram, now, RandomChooser(seed, sticky=60), max_steps=80).run()


def test_seeded_walks_send_messages_and_agree(sqlite_url, workflow_engine, now):
    """Walks through the message diagram take message steps (the boundaries, interrupting or not, and the receive
    task) and agree on them, subscription rows included."""
    diagram = next(d for d in RUNNABLE if d.file == "tests/data/message_waits.bpmn")
    sessions = _sessions(sqlite_url, workflow_engine)
    deploy(sessions, diagram)
    sent = set()
    for seed in range(30):
        walk = Walk(sessions, diagram, now, RandomChooser(seed), max_steps=10).run()
        sent |= {line.split("'")[1] for line in walk.log if ": message '" in line}
        if len(sent) == 3:
            break
    assert sent == {"payment received", "payment reminder", "invoice withdrawn"}
