"""Actions on a whole case: cancel, suspend, resume, retry a stopped case. Each is audited with its reason."""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from . import audit, core, external_queue, notify, subscriptions
from . import definitions as defs
from .access import may_administer, may_cancel
from .actions import record_step
from .clock import utcnow
from .db import HumanTask, User
from .errors import Conflict, InvalidForm, NotAllowed
from .inbox import close
from .rows import InstanceRow, read_instance, read_instance_state, write_instance
from .running import RunningInstance
from .sql import run
from .vocabulary import EventKind, InstanceStatus, TaskStatus

_tasks = HumanTask.__table__
_CANCEL_OPEN_TASKS = (update(_tasks)
                      .where(_tasks.c.instance_id == bindparam("case_id"), _tasks.c.status == TaskStatus.OPEN)
                      .values(status=TaskStatus.CANCELLED).returning(_tasks.c.id))


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidForm({"reason": "Say why; the reason goes into the case's history."}, {"reason": reason})
    return text[:2000]


def cancel(session: Session, actor: User, instance_id: int, reason: str) -> InstanceRow:
    """End an open case for good; its open tasks leave every inbox."""
    instance, state = read_instance_state(session, instance_id)
    if not may_cancel(session, actor, instance):
        raise NotAllowed("Only the starter, the process owner or an administrator may cancel this case.")
    if instance.status not in InstanceStatus.open():
        raise Conflict(f"The case is already {instance.status}.")
    why = _reason(reason)
    engine = core.of(session)
    definition = defs.parsed_by_id(session, instance.definition_id, core.bound_calls(state))
    workflow = engine.load(state, definition)
    workflow.cancel()
    write_instance(session, instance, state=engine.dump(workflow, definition.bound), status=InstanceStatus.CANCELLED,
                   ended_at=utcnow(), next_timer_at=None)
    close(session, list(run(session, _CANCEL_OPEN_TASKS, {"case_id": instance.id}).scalars()))
    external_queue.cancel_all(session, instance.id)
    subscriptions.cancel_all(session, instance.id)
    audit.record(session, EventKind.CANCELLED, instance=instance, actor=actor, reason=why)
    if actor.id != instance.started_by_id:
        notify.request_finished(session, instance)
    return instance


def _set_status(session: Session, actor: User, instance_id: int, reason: str, *,
                frm: InstanceStatus, to: InstanceStatus, kind: EventKind) -> InstanceRow:
    instance = read_instance(session, instance_id)
    if not may_administer(session, actor, instance.process_key):
        raise NotAllowed("Only the process owner or an administrator may suspend or resume cases.")
    if instance.status != frm:
        raise Conflict(f"The case is {instance.status}, not {frm}.")
    why = _reason(reason)
    write_instance(session, instance, status=to)
    audit.record(session, kind, instance=instance, actor=actor, reason=why)
    return instance


def suspend(session: Session, actor: User, instance_id: int, reason: str) -> InstanceRow:
    """Hold a case: its tasks stay in the inboxes but cannot be claimed or completed."""
    return _set_status(session, actor, instance_id, reason, frm=InstanceStatus.RUNNING, to=InstanceStatus.SUSPENDED,
                       kind=EventKind.SUSPENDED)


def retry(session: Session, actor: User, instance_id: int, reason: str = "") -> InstanceRow:
    """Run a stopped case again from the step that failed, once its cause is fixed (a new version of
    the diagram the case was moved to, or the data). It may stop again: a new incident says why."""
    running = RunningInstance.open(session, instance_id)
    instance = running.row
    if not may_administer(session, actor, instance.process_key):
        raise NotAllowed("Only the process owner or an administrator may retry a stopped case.")
    if instance.status != InstanceStatus.INCIDENT:
        raise Conflict(f"The case is {instance.status}; only a stopped case is retried.")
    audit.record(session, EventKind.RETRIED, instance=instance, actor=actor, reason=(reason or "").strip()[:2000])
    external_queue.reset_retries(session, instance.id)
    running.retry()
    record_step(session, running, running.save(session))
    return instance


def resume(session: Session, actor: User, instance_id: int, reason: str) -> InstanceRow:
    return _set_status(session, actor, instance_id, reason, frm=InstanceStatus.SUSPENDED, to=InstanceStatus.RUNNING,
                       kind=EventKind.RESUMED)
