"""BPMN timers fired by the worker with a controlled clock; notifications and e-mail."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import actions, definitions, inbox, notify, running, users
from engine.core import WorkflowEngine
from engine.db import Event, HumanTask, Notification, ProcessInstance, make_engine
from engine.worker import Worker, fire_due_timers

TIMERS = (Path(__file__).parent / "data" / "timers.bpmn").read_text()
T0 = datetime(2026, 11, 26, 9, 0)


@pytest.fixture
def timer_process(session, user):
    definitions.deploy(session, None, TIMERS)
    session.commit()
    from engine.db import Process

    session.get(Process, "timer_demo").starter_roles = ["sales_rep"]
    session.commit()


def _start(session, user, reply_by="2026-11-28"):
    started = actions.start_process(session, user("steve"), "timer_demo", {"title": "Ask", "reply_by": reply_by})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    return instance


def _open(session, instance):
    session.expire_all()
    return sorted(t.element_id for t in session.scalars(
        select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open")))


def _kinds(session, instance, kind):
    return session.scalars(select(Event).where(Event.instance_id == instance.id, Event.kind == kind)
                           .order_by(Event.id)).all()


def test_each_timer_kind_fires_at_its_moment(sessions, session, user, timer_process, now):
    instance = _start(session, user)
    assert _open(session, instance) == []
    assert instance.next_timer_at == T0 + timedelta(minutes=30)

    now.advance(minutes=29)
    assert fire_due_timers(sessions) == 0
    now.advance(minutes=2)  # the intermediate timer (PT30M) is due
    assert fire_due_timers(sessions) == 1
    assert _open(session, instance) == ["answer"]
    session.refresh(instance)
    assert instance.next_timer_at == T0 + timedelta(minutes=91), "the non-interrupting PT1H boundary"

    now.advance(minutes=61)  # non-interrupting boundary: an escalation task, the answer stays
    fire_due_timers(sessions)
    assert _open(session, instance) == ["answer", "chase"]
    chase = session.scalars(select(HumanTask).where(HumanTask.element_id == "chase")).one()
    notes = session.scalars(select(Notification).where(Notification.task_id == chase.id)).all()
    assert {n.kind for n in notes} == {"escalated"} and {n.user.username for n in notes} == {"mark"}

    now.now = datetime(2026, 11, 28, 0, 1)  # interrupting boundary at the reply date from the start form
    fire_due_timers(sessions)
    assert _open(session, instance) == ["chase"]
    answer = session.scalars(select(HumanTask).where(HumanTask.element_id == "answer")).one()
    assert answer.status == "cancelled"
    assert [t for t in inbox.inbox(session, user("steve")).available if t.instance_id == instance.id] == []
    fired = _kinds(session, instance, "timer_fired")
    assert [(e.element_id, e.data["attached_to"], e.data["interrupting"]) for e in fired] == [
        ("wait_a_bit", None, None), ("remind", "answer", False), ("give_up", "answer", True)]
    session.refresh(instance)
    assert instance.next_timer_at is None

    actions.complete_task(session, user("mark"), chase.id, {})
    session.commit()
    assert instance.status == "completed"


def test_a_crash_in_the_middle_loses_nothing(sessions, session, user, timer_process, now, monkeypatch):
    instance = _start(session, user)
    now.advance(minutes=31)
    original = running.RunningInstance.save

    def crash(self, session):
        raise RuntimeError("power cut")

    monkeypatch.setattr(running.RunningInstance, "save", crash)
    fire_due_timers(sessions)
    assert _open(session, instance) == [] and _kinds(session, instance, "timer_fired") == []
    monkeypatch.setattr(running.RunningInstance, "save", original)
    now.advance(minutes=2)  # a failing case is retried a minute later
    fire_due_timers(sessions)
    assert _open(session, instance) == ["answer"] and len(_kinds(session, instance, "timer_fired")) == 1


def test_notifications_for_new_tasks_due_dates_and_finished_requests(sessions, session, user, now):
    started = actions.start_process(session, user("cathy"), "customer_complaint", {
        "title": "Chair", "customer_name": "W", "customer_contact": "c", "product_name": "p",
        "problem_type": "quality", "complaint_description": "d"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    [note] = notify.latest(session, user("cathy"))
    assert (note.kind, note.instance_id) == ("new_task", instance.id) and "Classify complaint" in note.message
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id)).one()
    now.now = task.due_at - timedelta(hours=2)
    Worker(sessions).run_once()
    now.now = task.due_at + timedelta(minutes=1)
    Worker(sessions).run_once()
    Worker(sessions).run_once()
    session.expire_all()
    assert [n.kind for n in notify.latest(session, user("cathy"))] == ["overdue", "due_soon", "new_task"]
    assert notify.unread_count(session, user("cathy")) == 3
    notify.mark_all_read(session, user("cathy"))
    session.commit()
    assert notify.unread_count(session, user("cathy")) == 0
    from engine import case_actions

    case_actions.cancel(session, user("admin"), instance.id, "Test")
    session.commit()
    assert notify.latest(session, user("cathy"))[0].kind == "request_finished"


def test_email_is_sent_retried_and_can_be_switched_off(sessions, session, user, now):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    received = []

    class Collect(Sink):
        async def handle_DATA(self, server, smtp_session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append(envelope)
            return "250 OK"

    cathy = user("cathy")
    notify._add(session, [cathy], "new_task", "First", instance_id=None)
    session.commit()
    dead = notify.SmtpSettings(host="127.0.0.1", port=_free_port())
    assert notify.send_pending_email(session, dead) == (0, 1)
    session.commit()
    row = session.scalars(select(Notification).where(Notification.message == "First")).one()
    assert row.email_state == "pending" and row.email_attempts == 1 and "Connection" in row.last_error
    assert row.next_attempt_at == T0 + timedelta(minutes=2)

    controller = Controller(Collect(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        live = notify.SmtpSettings(host="127.0.0.1", port=controller.port)
        assert notify.send_pending_email(session, live) == (0, 0), "not before the back-off"
        now.advance(minutes=3)
        assert notify.send_pending_email(session, live) == (1, 0)
        session.commit()
    finally:
        controller.stop()
    assert len(received) == 1 and received[0].rcpt_tos == ["cathy@example.com"]
    assert b"First" in received[0].content and row.email_state == "sent"

    notify.set_email(session, cathy, False)
    notify._add(session, [cathy], "new_task", "Second")
    session.commit()
    assert session.scalars(select(Notification).where(Notification.message == "Second")).one().email_state == "off"

    failing = session.scalars(select(Notification).where(Notification.message == "First")).one()
    failing.email_state, failing.email_attempts, failing.next_attempt_at = "pending", 4, now.now
    session.commit()
    notify.send_pending_email(session, dead)
    assert failing.email_state == "failed" and failing.email_attempts == 5


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_fire_each_of_500_timers_exactly_once(postgres_url, now):
    engine = make_engine(postgres_url)
    sessions = WorkflowEngine().session_factory(engine)
    with sessions() as session:
        definitions.deploy(session, None, TIMERS)
        from engine.db import Process

        session.get(Process, "timer_demo").starter_roles = ["sales_rep"]
        session.commit()
        steve = users.user_by_name(session, "steve")
        for n in range(500):
            actions.start_process(session, steve, "timer_demo", {"title": f"Case {n}", "reply_by": "2027-01-01"})
        session.commit()
    now.advance(minutes=31)
    counts: list[int] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        barrier.wait()
        counts.append(fire_due_timers(sessions, limit=10_000))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as session:
        fired = session.execute(select(Event.instance_id, func.count()).where(Event.kind == "timer_fired")
                                .group_by(Event.instance_id)).all()
        answers = session.scalar(select(func.count()).select_from(HumanTask).where(HumanTask.element_id == "answer"))
        waiting = session.scalar(select(func.count()).select_from(ProcessInstance)
                                 .where(ProcessInstance.next_timer_at <= now.now))
    engine.dispose()
    assert sum(counts) == 500 and all(c > 0 for c in counts), counts
    assert len(fired) == 500 and all(n == 1 for _, n in fired)
    assert answers == 500 and waiting == 0


def test_notification_pages(login_as):
    cathy = login_as("cathy")
    cathy.post("/processes/customer_complaint/start", data={
        "title": "Chair", "customer_name": "W", "customer_contact": "c", "product_name": "p",
        "problem_type": "quality", "complaint_description": "d"})
    page = cathy.get("/").get_data(as_text=True)
    assert 'id="unread-count">1<' in page
    listing = cathy.get("/notifications").get_data(as_text=True)
    assert 'data-kind="new_task"' in listing and "Classify complaint" in listing
    cathy.post("/notifications/read")
    assert 'id="unread-count"' not in cathy.get("/").get_data(as_text=True)
    cathy.post("/notifications/email", data={})
    assert "E-mail notifications are off." in cathy.get("/notifications").get_data(as_text=True)


def test_monthly_drawing_statistics_run_end_to_end(sessions, session, user, now):
    from engine.db import ProcessSchedule
    from engine.worker import start_scheduled_processes

    due = session.get(ProcessSchedule, "monthly_drawing_statistics").next_start_at
    assert (due.day, due.hour) == (1, 8), "the first of the month at 08:00 UTC"
    now.now = due + timedelta(seconds=1)
    start_scheduled_processes(sessions)  # other scheduled processes may be due by then too (the weekly diary)
    [case] = session.scalars(select(ProcessInstance).where(
        ProcessInstance.process_key == "monthly_drawing_statistics")).all()
    steps = [
        ("clara", "submit_drawing_statistics", {"statistics_month": f"{due:%Y-%m}", "applications_received": "14",
                                                "applications_closed": "11"}),
        ("mark", "review_drawing_statistics", {"statistics_decision": "rework", "review_comment": "Split by line"}),
        ("clara", "submit_drawing_statistics", {"statistics_month": f"{due:%Y-%m}", "applications_received": "14",
                                                "applications_closed": "12"}),
        ("mark", "review_drawing_statistics", {"statistics_decision": "approve"}),
    ]
    for username, element, values in steps:
        [task] = [t for t in inbox.inbox(session, user(username)).available if t.instance_id == case.id]
        assert task.element_id == element
        actions.complete_task(session, user(username), task.id, values)
        session.commit()
    assert case.status == "completed" and case.data["applications_closed"] == 12
