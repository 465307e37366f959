"""The worker: fires due BPMN timers, sends due-date reminders and outbound e-mail, and every hour seals the
dashboard's days and months that are over (:func:`engine.dashboard.seal_recent`).

It polls ``process_instances.next_timer_at`` — with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
so that several workers share the load and never fire the same timer twice — and fires each
due instance in its own transaction: load, refresh SpiffWorkflow's timers, run engine steps,
save. A crash rolls the transaction back; the timer fires on the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import dashboard, notify, users
from . import definitions as defs
from .actions import record_step, start_scheduled
from .clock import utcnow
from .db import ProcessInstance, ProcessSchedule
from .rows import read_instance, write_instance
from .running import RunningInstance
from .vocabulary import InstanceStatus

log = logging.getLogger("deptflow.worker")


def _due(session: Session, now: datetime, limit: int) -> list[int]:
    query = (select(ProcessInstance.id)
             .where(ProcessInstance.status == InstanceStatus.RUNNING, ProcessInstance.next_timer_at <= now)
             .order_by(ProcessInstance.next_timer_at).limit(limit))
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def fire(session: Session, instance_id: int) -> bool:
    """Fire the due timers of one instance (locked by the caller's transaction)."""
    running = RunningInstance.open(session, instance_id)
    instance = running.row
    if instance.status != InstanceStatus.RUNNING:
        return False
    running.workflow.refresh_timers()
    running.run()
    record_step(session, running, running.save(session))
    now = utcnow()
    if instance.next_timer_at is not None and instance.next_timer_at <= now:
        # SpiffWorkflow fires strictly after the due moment; look again a moment later, not in a loop
        write_instance(session, instance, next_timer_at=now + timedelta(seconds=0.1))
    return True


def fire_due_timers(sessions: sessionmaker, limit: int = 200) -> int:
    """One pass: fire every instance whose timer is due, one transaction per instance.

    :returns: how many instances were processed
    """
    fired = 0
    while fired < limit:
        with sessions() as session:
            ids = _due(session, utcnow(), 1)
            if not ids:
                return fired
            try:
                fire(session, ids[0])
                session.commit()
            except Exception:
                session.rollback()
                log.exception("firing the timers of case %s failed; it is retried on the next pass", ids[0])
                _postpone(sessions, ids[0])
        fired += 1
    return fired


def _postpone(sessions: sessionmaker, instance_id: int) -> None:
    """Keep a failing instance from blocking the queue: retry it a minute later."""
    with sessions() as session:
        write_instance(session, read_instance(session, instance_id), next_timer_at=utcnow() + timedelta(minutes=1))
        session.commit()


def start_scheduled_processes(sessions: sessionmaker, limit: int = 50) -> int:
    """Start one instance of each process whose timer start event is due, and schedule the next.

    Occurrences missed while no worker ran are not replayed: one case starts, and the schedule
    moves to the next occurrence after now.
    """
    started = 0
    while started < limit:
        with sessions() as session:
            query = (select(ProcessSchedule).where(ProcessSchedule.next_start_at <= utcnow())
                     .order_by(ProcessSchedule.next_start_at).limit(1))
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            schedule = session.scalars(query).first()
            if schedule is None:
                return started
            occurrence = schedule.next_start_at
            try:
                start_scheduled(session, users.system_user(session), schedule.process_key, occurrence)
            except Exception:
                session.rollback()
                log.exception("starting the scheduled process %s failed", schedule.process_key)
                schedule = session.get(ProcessSchedule, schedule.process_key)
            definition = defs.latest_definition(session, schedule.process_key)
            start_timer = defs.parsed(session, definition).start_timer
            schedule.last_started_at = occurrence
            after = max(utcnow(), occurrence)
            schedule.next_start_at = defs.schedule_after(start_timer, after) if start_timer else None
            session.commit()
        started += 1
    return started


class Worker:
    """Polls for due timers, due-date reminders and outbound e-mail.

    ``deptflow worker`` runs it in the foreground; ``deptflow serve`` starts ``deptflow worker`` as a
    child process (a thread would not survive gunicorn's fork). :meth:`start_thread` is for the benchmarks.
    """

    def __init__(self, sessions: sessionmaker, interval: float = 0.2, smtp: notify.SmtpSettings | None = None,
                 seal_every: float | None = 3600.0):
        self.sessions = sessions
        self.interval = interval
        self.smtp = smtp
        self.seal_every = seal_every
        self._next_seal = time.monotonic()
        self._stop = threading.Event()

    def run_once(self) -> int:
        fired = start_scheduled_processes(self.sessions) + fire_due_timers(self.sessions)
        with self.sessions() as session:
            notify.remind_due_tasks(session)
            if self.smtp is not None:
                notify.send_pending_email(session, self.smtp)
            session.commit()
        return fired

    def seal_dashboard(self) -> int:
        """Seals the dashboard's recent days and months that are over; returns how many pieces it sealed."""
        with self.sessions() as session:
            return dashboard.seal_recent(session)

    def run(self) -> None:
        log.info("worker started (every %.1f s)", self.interval)
        while not self._stop.is_set():
            try:
                self.run_once()
                if self.seal_every is not None and time.monotonic() >= self._next_seal:
                    self._next_seal = time.monotonic() + self.seal_every
                    self.seal_dashboard()
            except Exception:
                log.exception("worker pass failed; trying again")
            self._stop.wait(self.interval)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="deptflow-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
