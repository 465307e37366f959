"""What the API's hot path leaves out must not change what it does: notifications written by one
``INSERT … SELECT`` reach the same people with the same e-mail state, a completion seals its events onto
the case's chain without reading the head again, and a token is checked with one statement that still
honours its scope, deactivated roles and the throttled last use."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from engine import actions, api_tokens, audit, clock, notify
from engine.db import ApiToken, HumanTask, Notification, ProcessInstance, Role, User

PROCESS = "marketing_plan_approval"
PLAN = {
    "title": "Marketing plan 2027", "plan_year": 2027, "marketing_strategy": "Grow the south.", "sales_target": 9000000,
    "total_budget": 800000, "ad_expense_q1": 100000, "ad_expense_q2": 100000, "ad_expense_q3": 100000,
    "ad_expense_q4": 100000,
}
APPROVE = {"mm_review_decision": "approve", "gm_threshold": 500000, "mm_review_comment": "Fine."}


def _statements(session):
    """The SQL statements ``session``'s engine runs from now on (a list that fills up)."""
    seen: list[str] = []
    sa_event.listen(session.get_bind(), "before_cursor_execute",
                    lambda _conn, _cursor, statement, *_: seen.append(" ".join(statement.split())))
    return seen


def test_a_new_task_notifies_each_active_member_of_its_role_once_with_their_email_state(session, user):
    manager = session.get(Role, "marketing_manager")
    other = session.get(Role, "finance")
    session.add_all([
        User(username="mm_mail", full_name="With mail", email="mm@example.com", password_hash="x",
             roles=[manager, other]),
        User(username="mm_quiet", full_name="No mails", email="q@example.com", email_notifications=False,
             password_hash="x", roles=[manager]),
        User(username="mm_nomail", full_name="No address", email=None, password_hash="x", roles=[manager]),
        User(username="mm_gone", full_name="Left", email="g@example.com", active=False, password_hash="x",
             roles=[manager]),
    ])
    session.commit()
    case = actions.start_process(session, user("rita"), PROCESS, PLAN)
    session.commit()
    task = session.scalars(select(HumanTask).where(HumanTask.instance_id == case.id)).one()
    sent = {n.user.username: n for n in session.scalars(select(Notification).where(Notification.task_id == task.id))}
    members = {u.username for u in session.scalars(select(User).where(User.active.is_(True)))
               if "marketing_manager" in u.role_keys}
    assert set(sent) == members and "mm_gone" not in sent
    assert sent["mm_mail"].email_state == "pending" and sent["mm_quiet"].email_state == "off"
    assert sent["mm_nomail"].email_state == "off"
    assert all(n.kind == "new_task" and n.instance_id == case.id and n.message.startswith("New task “")
               and n.created_at == n.next_attempt_at and n.email_attempts == 0 for n in sent.values())

    # a task with an assignee: its holder alone, if active
    holder = SimpleNamespace(id=task.id, name=task.name, assignee_id=user("mm_quiet").id, candidate_roles=["x"])
    notify.task_created(session, holder, SimpleNamespace(id=case.id, title=case.title), escalated=True)
    gone = SimpleNamespace(id=task.id, name=task.name, assignee_id=user("mm_gone").id, candidate_roles=["x"])
    notify.task_created(session, gone, SimpleNamespace(id=case.id, title=case.title), escalated=True)
    escalated = session.scalars(select(Notification).where(Notification.kind == "escalated")).all()
    assert [(n.user.username, n.email_state, n.task_id) for n in escalated] == [("mm_quiet", "off", task.id)]


def test_a_completion_seals_onto_the_head_its_write_returned_and_every_chain_stays_intact(session, user):
    case = actions.start_process(session, user("rita"), PROCESS, PLAN)
    session.commit()
    task_id = session.scalars(select(HumanTask.id).where(HumanTask.instance_id == case.id)).one()
    actions.claim(session, user("mark"), task_id)  # a write of the chain that does not go through the case's write
    session.commit()
    seen = _statements(session)
    actions.complete_task(session, user("mark"), task_id, APPROVE)
    session.commit()
    assert not [s for s in seen if s.startswith("SELECT process_instances.audit_seq")], seen
    assert any(s.startswith("UPDATE process_instances SET audit_seq") for s in seen)
    assert audit.verify(session).ok, audit.verify(session)
    assert session.get(ProcessInstance, case.id).audit_seq >= 3  # created, claimed, completed, created


def test_a_token_is_checked_in_one_statement_within_its_scope(session, user):
    mark = user("mark")
    made = api_tokens.create_token(session, mark, "ci", roles=["marketing_manager"])
    session.commit()
    seen = _statements(session)
    actor, touched = api_tokens.authenticate(session, made.secret)
    assert touched and len(seen) == 2 and seen[1].startswith("UPDATE api_tokens SET last_used_at")
    session.commit()
    assert actor.id == mark.id and actor.username == "mark" and actor.full_name == mark.full_name
    assert actor.role_keys == {"marketing_manager"} and actor.permissions == mark.permissions & actor.permissions
    assert [r.key for r in actor.roles] == ["marketing_manager"]
    assert actor.email == mark.email  # the rest of the user, read when asked
    # within the minute a request only reads
    seen.clear()
    again, touched = api_tokens.authenticate(session, made.secret)
    assert not touched and len(seen) == 1 and seen[0].startswith("SELECT")
    assert session.get(ApiToken, made.token.id).last_used_at is not None


def test_a_deactivated_role_gives_a_token_nothing(session, user, monkeypatch):
    made = api_tokens.create_token(session, user("mark"), "ci")
    session.commit()
    assert "marketing_manager" in api_tokens.authenticate(session, made.secret)[0].role_keys
    session.get(Role, "marketing_manager").active = False
    session.commit()
    actor, _ = api_tokens.authenticate(session, made.secret)
    assert "marketing_manager" not in actor.role_keys and actor.role_keys == user("mark").role_keys
    later = clock.utcnow() + timedelta(days=api_tokens.DEFAULT_DAYS, seconds=1)
    monkeypatch.setattr(api_tokens, "utcnow", lambda: later)
    with pytest.raises(api_tokens.NotAllowed):
        api_tokens.authenticate(session, made.secret)
