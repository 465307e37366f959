"""Different tasks of one instance completed at the same moment (parallel branches): all win."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from engine import actions, audit, definitions, rows
from engine.db import Event, HumanTask, Process, ProcessInstance
from engine.errors import DeptflowError

PARALLEL = (Path(__file__).parent / "data" / "parallel.bpmn").read_text()


def test_parallel_branches_completed_at_once_both_succeed(sessions, session, user):
    definitions.deploy(session, None, PARALLEL)
    session.commit()
    session.get(Process, "parallel_review").starter_roles = ["sales_rep"]
    session.commit()
    rounds = 5
    for n in range(rounds):
        instance = actions.start_process(session, user("steve"), "parallel_review", {"title": f"Review {n}"})
        session.commit()
        open_tasks = {t.element_id: t.id for t in session.scalars(
            select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open"))}
        assert set(open_tasks) == {"sales_view", "marketing_view"}
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_complete, args=(sessions, user, barrier, errors, "steve",
                                                     open_tasks["sales_view"], {"sales_opinion": "Dealers like it"})),
            threading.Thread(target=_complete, args=(sessions, user, barrier, errors, "mark",
                                                     open_tasks["marketing_view"], {"marketing_opinion": "On brand"})),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        session.expire_all()
        done = session.get(ProcessInstance, instance.id)
        assert done.status == "completed", f"round {n}"
        assert done.data["sales_opinion"] == "Dealers like it" and done.data["marketing_opinion"] == "On brand"
        completions = session.scalars(select(Event).where(Event.instance_id == instance.id,
                                                          Event.kind == "completed")).all()
        assert sorted(e.element_id for e in completions) == ["marketing_view", "sales_view"]
    assert audit.verify(session).ok


def _complete(sessions, user, barrier, errors, username: str, task_id: int, values: dict) -> None:
    with sessions() as own:
        actor = own.merge(user(username), load=True)
        barrier.wait()
        try:
            rows.retrying(own, lambda: actions.complete_task(own, actor, task_id, values))
            own.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)


def test_a_claim_and_a_completion_of_one_task_at_once_never_deadlock(sessions, session, user):
    """A claim takes the case's row before the task's row, as a completion does. On PostgreSQL the
    two used to wait for each other (the completion holding the case and waiting for the task, the
    claim holding the task and waiting for the case at commit): the database broke the deadlock
    with an error, a 500 for one of the two people. Now one wins and the other is told why."""
    definitions.deploy(session, None, PARALLEL)
    session.commit()
    session.get(Process, "parallel_review").starter_roles = ["sales_rep"]
    session.commit()
    for n in range(8):
        instance = actions.start_process(session, user("steve"), "parallel_review", {"title": f"Race {n}"})
        session.commit()
        task_id = session.scalar(select(HumanTask.id).where(
            HumanTask.instance_id == instance.id, HumanTask.element_id == "sales_view"))
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_complete, args=(sessions, user, barrier, errors, "sara", task_id,
                                                     {"sales_opinion": "Dealers like it"})),
            threading.Thread(target=_claim, args=(sessions, user, barrier, errors, "steve", task_id)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(e, DeptflowError) for e in errors), f"round {n}: {errors!r}"
        assert len(errors) <= 1, f"round {n}: both lost: {errors!r}"
    assert audit.verify(session).ok


def _claim(sessions, user, barrier, errors, username: str, task_id: int) -> None:
    with sessions() as own:
        actor = own.merge(user(username), load=True)
        barrier.wait()
        try:
            rows.retrying(own, lambda: actions.claim(own, actor, task_id))
            own.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
