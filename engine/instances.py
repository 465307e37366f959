"""Administrative actions on a whole case: cancel, suspend, resume. Each is audited with its reason."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, notify, persistence, runtime
from . import tasks as projection
from .clock import utcnow
from .db import HumanTask, Process, ProcessInstance, User
from .errors import Conflict, InvalidForm, NotAllowed, NotFound


def _instance(session: Session, instance_id: int) -> ProcessInstance:
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    return instance


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidForm({"reason": "Say why; the reason goes into the case's history."}, {"reason": reason})
    return text[:2000]


def may_administer(session: Session, actor: User, instance: ProcessInstance) -> bool:
    """Administrators and the process's owner role may suspend, resume and cancel any of its cases."""
    process = session.get(Process, instance.process_key)
    return "admin" in actor.role_keys or bool(process and process.owner_role in actor.role_keys)


def may_cancel(session: Session, actor: User, instance: ProcessInstance) -> bool:
    """Besides administrators and the owner role, the starter may withdraw their own request."""
    return instance.started_by_id == actor.id or may_administer(session, actor, instance)


def allowed_actions(session: Session, actor: User, instance: ProcessInstance) -> set[str]:
    """Which of cancel / suspend / resume ``actor`` may do to ``instance`` now (for the case page)."""
    actions = set()
    if instance.status in ("running", "suspended") and may_cancel(session, actor, instance):
        actions.add("cancel")
    if may_administer(session, actor, instance):
        actions.add({"running": "suspend", "suspended": "resume"}.get(instance.status, ""))
    return actions - {""}


def cancel(session: Session, actor: User, instance_id: int, reason: str) -> ProcessInstance:
    """End a running or suspended case for good; its open tasks leave every inbox."""
    instance = _instance(session, instance_id)
    if not may_cancel(session, actor, instance):
        raise NotAllowed("Only the starter, the process owner or an administrator may cancel this case.")
    if instance.status not in ("running", "suspended"):
        raise Conflict(f"The case is already {instance.status}.")
    why = _reason(reason)
    running = runtime.load_instance(session, instance)
    running.workflow.cancel()
    instance.state = persistence.dump(running.workflow)
    open_tasks = list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                              HumanTask.status == "open")))
    for task in open_tasks:
        task.status = "cancelled"
    projection.close(session, [task.id for task in open_tasks])
    instance.status, instance.ended_at, instance.next_timer_at = "cancelled", utcnow(), None
    audit.record(session, "cancelled", instance=instance, actor=actor, reason=why)
    if actor.id != instance.started_by_id:
        notify.request_finished(session, instance)
    session.flush()
    return instance


def _set_status(
    session: Session, actor: User, instance_id: int, reason: str, *, frm: str, to: str, kind: str
) -> ProcessInstance:
    instance = _instance(session, instance_id)
    if not may_administer(session, actor, instance):
        raise NotAllowed("Only the process owner or an administrator may suspend or resume cases.")
    if instance.status != frm:
        raise Conflict(f"The case is {instance.status}, not {frm}.")
    why = _reason(reason)
    instance.status = to
    audit.record(session, kind, instance=instance, actor=actor, reason=why)
    session.flush()
    return instance


def suspend(session: Session, actor: User, instance_id: int, reason: str) -> ProcessInstance:
    """Hold a case: its tasks stay in the inboxes but cannot be claimed or completed."""
    return _set_status(session, actor, instance_id, reason, frm="running", to="suspended", kind="suspended")


def resume(session: Session, actor: User, instance_id: int, reason: str) -> ProcessInstance:
    return _set_status(session, actor, instance_id, reason, frm="suspended", to="running", kind="resumed")
