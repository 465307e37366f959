"""The seed processes' deadlines and escalations, fired by the worker with a controlled clock.

* Customer complaint: a resolution still open after 3 days goes to the marketing manager as a
  chase task (non-interrupting: production / the sales manager keep the resolution task).
* Annual marketing plan: an approval unanswered for 3 days reminds the general manager
  (non-interrupting, no new task).
* Dealer audit: the dealer's rectification deadline (14 days) withdraws the task from the dealer
  and sends the store to the re-check (interrupting).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine import actions, inbox
from engine.db import Event, HumanTask, Notification, ProcessInstance
from engine.worker import fire_due_timers

T0 = datetime(2026, 3, 2, 9, 0)

COMPLAINT = {
    "title": "Complaint: Wang, sofa fabric tear", "customer_name": "Wang Fang", "customer_contact": "138 0000 0000",
    "product_name": "Sofa Milano", "problem_type": "quality", "complaint_description": "The fabric tore after a week.",
}
PLAN = {
    "title": "Marketing plan 2027", "plan_year": 2027, "marketing_strategy": "Grow the south.", "sales_target": 9000000,
    "total_budget": 800000, "ad_expense_q1": 100000, "ad_expense_q2": 100000, "ad_expense_q3": 100000,
    "ad_expense_q4": 100000,
}
AUDIT = {
    "title": "Audit: Dealer Li, Chengdu store", "dealer_name": "Li Trading", "store_name": "Chengdu Centre",
    "region": "South-west", "audit_date": "2026-03-05",
}
NOT_COMPLIANT = {"decoration_ok": True, "price_discipline_ok": False, "no_cross_region_selling": True,
                 "display_ok": True, "findings": "Sells 20% below the company price."}


def _tasks(session, instance, status: str = "open") -> list[HumanTask]:
    session.expire_all()
    return list(session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                        HumanTask.status == status).order_by(HumanTask.id)))


def _open(session, instance) -> list[str]:
    return sorted(t.element_id for t in _tasks(session, instance))


def _task(session, instance, element_id: str) -> HumanTask:
    session.expire_all()
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                   HumanTask.element_id == element_id)).one()


def _complete(session, actor, instance, element_id: str, values: dict) -> None:
    actions.complete_task(session, actor, _task(session, instance, element_id).id, values)
    session.commit()


def _notifications(session, task: HumanTask, kind: str | None = None) -> list[Notification]:
    query = select(Notification).where(Notification.task_id == task.id)
    if kind:
        query = query.where(Notification.kind == kind)
    return list(session.scalars(query))


def _timers_fired(session, instance) -> list[tuple[str, str | None, bool | None]]:
    events = session.scalars(select(Event).where(Event.instance_id == instance.id, Event.kind == "timer_fired")
                             .order_by(Event.id))
    return [(e.element_id, e.data["attached_to"], e.data["interrupting"]) for e in events]


def _in_inbox(session, user, task: HumanTask) -> bool:
    page = inbox.inbox(session, user)
    return task.id in {t.id for t in page.assigned + page.available}


# --- customer complaint ------------------------------------------------------------------


@pytest.mark.parametrize(("problem_type", "resolve", "boundary", "resolver"), [
    ("quality", "resolve_quality_problem", "quality_problem_unresolved", "paula"),
    ("delivery", "resolve_service_problem", "service_problem_unresolved", "sam"),
])
def test_unresolved_complaint_is_chased_by_the_marketing_manager(sessions, session, user, now, problem_type,
                                                                 resolve, boundary, resolver):
    started = actions.start_process(session, user("cathy"), "customer_complaint",
                                     {**COMPLAINT, "problem_type": problem_type})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    now.advance(hours=2)
    _complete(session, user("cathy"), instance, "classify_complaint",
              {"severity": "high", "confirmed_type": problem_type})
    assert _open(session, instance) == [resolve]
    session.refresh(instance)
    assert instance.next_timer_at == now.now + timedelta(days=3)

    now.advance(days=3, minutes=-1)
    assert fire_due_timers(sessions) == 0
    assert _open(session, instance) == [resolve]

    now.advance(minutes=2)
    assert fire_due_timers(sessions) == 1
    assert _open(session, instance) == sorted([resolve, "chase_unresolved_complaint"]), "the resolution stays open"
    chase = _task(session, instance, "chase_unresolved_complaint")
    assert chase.candidate_roles == ["marketing_manager"] and chase.assignee_id is None
    assert _in_inbox(session, user("mark"), chase)
    assert _in_inbox(session, user(resolver), _task(session, instance, resolve))
    notes = _notifications(session, chase)
    assert {n.kind for n in notes} == {"escalated"} and {n.user.username for n in notes} == {"mark"}
    assert _timers_fired(session, instance) == [(boundary, resolve, False)]
    session.refresh(instance)
    assert instance.next_timer_at is None, "a non-interrupting timer with a duration fires once"

    _complete(session, user("mark"), instance, "chase_unresolved_complaint",
              {"chase_note": "Production promised a new cover by Friday."})
    assert _open(session, instance) == [resolve]
    assert instance.data["chase_note"] == "Production promised a new cover by Friday."


def test_a_complaint_resolved_in_time_is_not_chased(sessions, session, user, now):
    started = actions.start_process(session, user("cathy"), "customer_complaint", COMPLAINT)
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    _complete(session, user("cathy"), instance, "classify_complaint", {"severity": "low", "confirmed_type": "quality"})
    now.advance(days=2)
    _complete(session, user("paula"), instance, "resolve_quality_problem", {
        "root_cause": "Weak seam", "quality_resolution": "New cover", "quality_resolved_date": "2026-03-04"})
    assert _open(session, instance) == ["confirm_with_customer"]
    session.refresh(instance)
    assert instance.next_timer_at is None, "completing the task removes its deadline"
    now.advance(days=2)
    assert fire_due_timers(sessions) == 0
    assert _open(session, instance) == ["confirm_with_customer"] and _timers_fired(session, instance) == []


# --- annual marketing plan ---------------------------------------------------------------


def test_unanswered_budget_approval_reminds_the_general_manager(sessions, session, user, now):
    started = actions.start_process(session, user("rita"), "marketing_plan_approval", PLAN)
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    _complete(session, user("mark"), instance, "review_marketing_plan",
              {"mm_review_decision": "approve", "gm_threshold": 500000})
    _complete(session, user("fiona"), instance, "check_marketing_budget", {"finance_decision": "approve"})
    assert _open(session, instance) == ["approve_marketing_plan"]
    approval = _task(session, instance, "approve_marketing_plan")
    actions.claim(session, user("grace"), approval.id)
    session.commit()

    now.advance(days=3, minutes=-1)
    assert fire_due_timers(sessions) == 0
    assert _notifications(session, approval, "escalated") == []

    now.advance(minutes=2)
    assert fire_due_timers(sessions) == 1
    assert [t.element_id for t in _tasks(session, instance)] == ["approve_marketing_plan"], "no new task"
    approval = _task(session, instance, "approve_marketing_plan")
    assert approval.id == _tasks(session, instance)[0].id and approval.assignee.username == "grace"
    [reminder] = _notifications(session, approval, "escalated")
    assert reminder.user.username == "grace" and "Approve marketing plan" in reminder.message
    assert _timers_fired(session, instance) == [("approval_waiting", "approve_marketing_plan", False)]
    assert instance.status == "running"

    _complete(session, user("grace"), instance, "approve_marketing_plan", {"gm_decision": "approve"})
    assert _open(session, instance) == ["acknowledge_marketing_plan"]


# --- dealer audit --------------------------------------------------------------------------


def test_rectification_deadline_sends_the_store_to_the_recheck(sessions, session, user, now):
    started = actions.start_process(session, user("mark"), "dealer_audit", AUDIT)
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    _complete(session, user("amy"), instance, "inspect_dealer", NOT_COMPLIANT)
    assert _open(session, instance) == ["rectify_findings"]
    rectify = _task(session, instance, "rectify_findings")
    assert _in_inbox(session, user("dora"), rectify)

    now.advance(days=14, minutes=-1)
    assert fire_due_timers(sessions) == 0
    assert _open(session, instance) == ["rectify_findings"]

    now.advance(minutes=2)
    assert fire_due_timers(sessions) == 1
    assert _open(session, instance) == ["recheck_dealer"]
    rectify = _task(session, instance, "rectify_findings")
    assert rectify.status == "cancelled"
    assert not _in_inbox(session, user("dora"), rectify)
    recheck = _task(session, instance, "recheck_dealer")
    assert recheck.candidate_roles == ["assistant_marketing_manager"] and _in_inbox(session, user("amy"), recheck)
    assert {n.user.username for n in _notifications(session, recheck)} == {"amy"}
    assert _timers_fired(session, instance) == [("rectification_overdue", "rectify_findings", True)]

    _complete(session, user("amy"), instance, "recheck_dealer",
              {**NOT_COMPLIANT, "price_discipline_ok": True, "findings": ""})
    assert _open(session, instance) == ["close_audit"]


def test_rectification_reported_in_time_goes_to_the_recheck_once(sessions, session, user, now):
    started = actions.start_process(session, user("mark"), "dealer_audit", AUDIT)
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    _complete(session, user("amy"), instance, "inspect_dealer", NOT_COMPLIANT)
    now.advance(days=10)
    _complete(session, user("dora"), instance, "rectify_findings",
              {"rectification_deadline": "2026-03-12", "rectification_actions": "Prices corrected."})
    assert _open(session, instance) == ["recheck_dealer"]
    now.advance(days=10)
    assert fire_due_timers(sessions) == 0
    assert _open(session, instance) == ["recheck_dealer"] and _timers_fired(session, instance) == []
