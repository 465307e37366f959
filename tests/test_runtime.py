"""The engine's operations on SQLite and PostgreSQL: start, inbox, claim, complete, races."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import actions, audit, case_actions, definitions, inbox, read_models, rows
from engine.db import Event, HumanTask, ProcessInstance, TaskCandidate
from engine.errors import InvalidForm, NotAllowed, NotFound, TaskAlreadyCompleted

MINI = (Path(__file__).parent / "data" / "mini_approval.bpmn").read_text()


@pytest.fixture
def mini(session):
    definitions.deploy(session, None, MINI)
    session.commit()
    return "mini_approval"


def _start(session, user, title="New van", amount="5"):
    instance = actions.start_process(session, user, "mini_approval", {"title": title, "amount": amount})
    session.commit()
    return instance


def _available(session, actor, instance):
    return [t for t in inbox.inbox(session, actor).available if t.instance_id == instance.id]


def test_start_puts_the_task_in_the_roles_inbox(session, user, mini):
    instance = _start(session, user("steve"))
    assert instance.status == "running" and instance.data == {"title": "New van", "amount": 5}
    [task] = _available(session, user("mark"), instance)
    assert (task.name, task.candidate_roles, task.priority) == ("Approve request", ["marketing_manager"], 70)
    assert (task.case_title, task.process_name) == ("New van", "Mini approval")
    assert task.due_at is not None and (task.due_at - session.get(HumanTask, task.id).created_at).days == 2
    assert _available(session, user("grace"), instance) == []
    kinds = [e.kind for e in session.scalars(
        select(Event).where(Event.instance_id == instance.id).order_by(Event.id))]
    assert kinds == ["started", "task_created"]


def test_only_starter_roles_may_start_and_the_form_is_validated(session, user, mini):
    with pytest.raises(NotAllowed):
        actions.start_process(session, user("mark"), "mini_approval", {"title": "x"})
    with pytest.raises(InvalidForm) as caught:
        actions.start_process(session, user("steve"), "mini_approval", {"title": "", "amount": "-3"})
    assert set(caught.value.errors) == {"title", "amount"}
    with pytest.raises(NotFound):
        actions.start_process(session, user("steve"), "no_such_process", {})
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ProcessInstance)) == 0


def test_a_closed_task_leaves_the_role_lookup_but_keeps_its_roles(session, user, mini):
    """task_candidates holds open tasks only: the inbox's role lookup never wades through history."""
    done, cancelled = _start(session, user("steve")), _start(session, user("steve"), title="Old van")
    [task] = _available(session, user("mark"), done)
    actions.complete_task(session, user("mark"), task.id, {"decision": "approve"})
    case_actions.cancel(session, user("steve"), cancelled.id, "Not needed")
    session.commit()
    rows = session.scalars(select(HumanTask).where(HumanTask.instance_id.in_([done.id, cancelled.id]))).all()
    assert {(r.status, tuple(r.candidate_roles)) for r in rows} == {
        ("completed", ("marketing_manager",)), ("cancelled", ("marketing_manager",))}
    assert session.scalars(select(TaskCandidate).where(TaskCandidate.task_id.in_([r.id for r in rows]))).all() == []


def test_the_inbox_comes_in_pages_with_totals(session, user, mini):
    started = [_start(session, user("steve"), title=f"Van {i}") for i in range(7)]
    mark = user("mark")
    first = inbox.inbox(session, mark, page_size=3)
    assert (len(first.available), first.available_total, first.available_page) == (3, 7, 1)
    last = inbox.inbox(session, mark, available_page=3, page_size=3)
    assert (len(last.available), last.available_page) == (1, 3)
    beyond = inbox.inbox(session, mark, available_page=99, page_size=3)  # past the end: the last page
    assert [t.id for t in beyond.available] == [t.id for t in last.available] and beyond.available_page == 3
    seen = [t.instance_id for page in (1, 2, 3) for t in inbox.inbox(session, mark, available_page=page,
                                                                      page_size=3).available]
    assert sorted(seen) == sorted(i.id for i in started)  # every task once, none skipped or repeated
    assert (first.assigned, first.assigned_total) == ([], 0)


def test_claim_unclaim_and_who_may_act(session, user, mini):
    instance = _start(session, user("steve"))
    [task] = _available(session, user("mark"), instance)
    with pytest.raises(NotAllowed):
        actions.claim(session, user("grace"), task.id)
    actions.claim(session, user("mark"), task.id)
    session.commit()
    assert [t.id for t in inbox.inbox(session, user("mark")).assigned] == [task.id]
    assert _available(session, user("mark"), instance) == []
    with pytest.raises(NotAllowed):
        actions.unclaim(session, user("steve"), task.id)
    actions.unclaim(session, user("mark"), task.id)
    session.commit()
    assert [t.id for t in _available(session, user("mark"), instance)] == [task.id]
    kinds = [e.kind for e in session.scalars(
        select(Event).where(Event.instance_id == instance.id).order_by(Event.id))]
    assert kinds[-2:] == ["claimed", "unclaimed"]


def test_rework_loop_then_completion(session, user, mini):
    mark = user("mark")
    instance = _start(session, user("steve"))
    [first] = _available(session, mark, instance)
    with pytest.raises(InvalidForm) as caught:
        actions.complete_task(session, mark, first.id, {"decision": "maybe"})
    assert caught.value.errors == {"decision": "Choose one of the listed options."}
    actions.complete_task(session, mark, first.id, {"decision": "reject"})
    session.commit()
    [again] = _available(session, mark, instance)
    assert again.id != first.id and again.element_id == "approve_request"
    actions.complete_task(session, mark, again.id, {"decision": "approve"})
    session.commit()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed" and instance.ended_at is not None
    assert instance.data["decision"] == "approve"
    detail = read_models.instance_detail(session, user("steve"), instance.id)
    assert [e.kind for e in detail.events] == [
        "started", "task_created",
        "completed", "gateway_decision", "task_created",
        "completed", "gateway_decision", "ended",
    ]
    rejected, back = detail.events[2], detail.events[3]
    assert rejected.data["values"] == {"decision": "reject"} and rejected.actor.username == "mark"
    assert rejected.data["changes"] == {"decision": [None, "reject"]}
    assert (back.element_id, back.data["flow"], back.data["to"], back.data["condition"]) == (
        "decided", "f3", "approve_request", "default")
    approved, forward = detail.events[5], detail.events[6]
    assert approved.data["changes"] == {"decision": ["reject", "approve"]}
    assert (forward.data["flow"], forward.data["to"], forward.data["condition"]) == (
        "f4", "end", "decision == 'approve'")


def test_second_completion_says_who_won(session, user, mini):
    instance = _start(session, user("steve"))
    [task] = _available(session, user("mark"), instance)
    actions.complete_task(session, user("mark"), task.id, {"decision": "approve"})
    session.commit()
    with pytest.raises(TaskAlreadyCompleted) as caught:
        actions.complete_task(session, user("mark"), task.id, {"decision": "reject"})
    assert caught.value.completed_by == "Mark Chen" and "already completed by Mark Chen at" in str(caught.value)


def test_unknown_task_and_foreign_instance(session, user, mini):
    with pytest.raises(NotFound):
        actions.complete_task(session, user("mark"), 424242, {})
    instance = _start(session, user("steve"))
    with pytest.raises(NotAllowed):
        read_models.instance_detail(session, user("dora"), instance.id)
    assert read_models.instance_detail(session, user("alice"), instance.id).instance.id == instance.id


def test_my_requests_show_the_current_step(session, user, mini):
    steve = user("steve")
    instance = _start(session, steve, title="Van")
    [row] = [r for r in read_models.my_requests(session, steve) if r.instance.id == instance.id]
    assert row.current_step == "Approve request" and row.open_tasks[0].candidate_roles == ["marketing_manager"]
    assert read_models.my_requests(session, user("sara")) == []


def test_racing_completions_have_exactly_one_winner(sessions, session, user, mini):
    instance = _start(session, user("steve"))
    [task] = _available(session, user("mark"), instance)
    racers = 6
    barrier = threading.Barrier(racers)
    outcomes: list[object] = []
    lock = threading.Lock()

    def race(decision: str) -> None:
        with sessions() as own:
            mark = own.merge(user("mark"), load=True)
            barrier.wait()
            try:
                rows.retrying(own, lambda: actions.complete_task(own, mark, task.id, {"decision": decision}))
                own.commit()
                result: object = decision
            except TaskAlreadyCompleted as exc:
                own.rollback()
                result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=("approve" if i % 2 else "reject",)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, TaskAlreadyCompleted)]
    assert len(winners) == 1 and len(losers) == racers - 1
    assert all(loser.completed_by == "Mark Chen" for loser in losers)
    session.expire_all()
    completions = session.scalars(
        select(Event).where(Event.instance_id == instance.id, Event.kind == "completed")
    ).all()
    assert len(completions) == 1 and completions[0].data["values"] == {"decision": winners[0]}
    open_now = session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")
    ).all()
    assert len(open_now) == (1 if winners[0] == "reject" else 0)
    assert audit.verify(session).ok, "losers left nothing in the chain"
