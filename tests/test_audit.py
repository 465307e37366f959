"""The hash-chained audit log: written by each operation, verified, tampering detected."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, text, update

from engine import actions, audit, definitions, inbox, users
from engine.db import AuditHead, Event, ProcessInstance
from web.cli import main
from workflows.catalogue import PROCESSES

MINI = (Path(__file__).parent / "data" / "mini_approval.bpmn").read_text()


@pytest.fixture
def history(session, user):
    """A deployed process, one finished case with a rework loop, one failed login."""
    definitions.deploy(session, user("owen"), MINI)
    session.commit()
    started = actions.start_process(session, user("steve"), "mini_approval", {"title": "Van", "amount": "3"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    for decision in ("reject", "approve"):
        [task] = [t for t in inbox.inbox(session, user("mark")).available if t.instance_id == instance.id]
        actions.claim(session, user("mark"), task.id)
        session.commit()
        actions.complete_task(session, user("mark"), task.id, {"decision": decision})
        session.commit()
    assert users.authenticate(session, "mark", "wrong") is None
    session.commit()
    return instance


def test_operations_write_their_events_with_actor_and_data(session, user, history):
    rows = session.scalars(select(Event).order_by(Event.id)).all()
    kinds = [e.kind for e in rows]
    mine = [e for e in rows if e.instance_id == history.id]
    assert [e.kind for e in mine] == [
        "started", "task_created", "claimed", "completed", "gateway_decision", "task_created",
        "claimed", "completed", "gateway_decision", "ended",
    ]
    started = mine[0]
    assert started.actor.username == "steve" and started.data["data"] == {"title": "Van", "amount": 3}
    assert started.data["version"] == 1
    published = next(e for e in rows if e.kind == "definition_published" and e.element_id == "mini_approval")
    assert published.actor.username == "owen" and len(published.data["sha256"]) == 64
    failed = rows[-1]
    assert kinds[-1] == "login_failed" and failed.data == {"username": "mark", "known_user": True, "address": "unknown",
                                                      "method": "password"}
    # the global chain: everything outside the case, and the case's start; the case's own chain: the rest,
    # its first link pointing at the start
    global_chain = [e for e in rows if e.chain == audit.GLOBAL_CHAIN]
    assert [e.seq for e in global_chain] == list(range(1, len(global_chain) + 1)) and started in global_chain
    assert [(e.chain, e.seq) for e in mine[1:]] == [(history.id, n) for n in range(1, len(mine))]
    assert mine[1].prev_hash == started.hash
    assert (history.audit_seq, history.audit_hash) == (len(mine) - 1, mine[-1].hash)


def test_a_held_case_row_sees_its_new_chain_head(session, user):
    """The head is written with Core at commit; an ORM copy in the session must not keep the old one."""
    definitions.deploy(session, user("owen"), MINI)
    started = actions.start_process(session, user("steve"), "mini_approval", {"title": "Van", "amount": "3"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    before = instance.audit_seq
    [task] = [t for t in inbox.inbox(session, user("mark")).available if t.instance_id == instance.id]
    actions.claim(session, user("mark"), task.id)  # touches the task row only, then seals onto the case's chain
    session.commit()
    claimed = session.scalars(select(Event).where(Event.kind == "claimed")).one()
    assert (instance.audit_seq, instance.audit_hash) == (before + 1, claimed.hash)


def test_untouched_chain_verifies(session, history):
    result = audit.verify(session)
    assert result.ok, str(result)
    total = session.scalar(select(func.count()).select_from(Event))
    expected = len(PROCESSES) + 1 + 10 + 1  # the catalogue, mini_approval, the case's events, a failed login
    assert result.count == total == expected
    assert str(result) == f"chain intact, {expected} events"


def _target(session, kind="completed"):
    return session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)).first()


def test_altered_data_is_named(session, history):
    victim = _target(session)
    session.execute(update(Event).where(Event.id == victim.id).values(data={"values": {"decision": "approve"}}))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.event_id == victim.id and "altered" in result.problem


def test_altered_actor_with_recomputed_hash_breaks_the_next_link(session, user, history):
    victim = _target(session)
    victim.actor_id = user("grace").id
    victim.hash = audit.event_hash(victim)  # a careful forger re-hashes the row...
    session.execute(update(Event).where(Event.id == victim.id).values(actor_id=victim.actor_id, hash=victim.hash))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.seq == victim.seq + 1 and "predecessor" in result.problem


def test_deleted_event_is_named(session, history):
    victim = _target(session, "claimed")
    session.execute(delete(Event).where(Event.id == victim.id))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.seq == victim.seq + 1 and "missing" in result.problem


def test_deleted_newest_event_is_noticed_by_the_head(session, history):
    newest = session.scalars(select(Event).where(Event.chain == audit.GLOBAL_CHAIN).order_by(Event.id.desc())).first()
    session.execute(delete(Event).where(Event.id == newest.id))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and "head" in result.problem and result.chain == audit.GLOBAL_CHAIN


def test_deleted_newest_event_of_a_case_is_noticed_by_its_head(session, history):
    ended = _target(session, "ended")
    session.execute(delete(Event).where(Event.id == ended.id))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and "head" in result.problem and result.chain == history.id
    assert f"of the chain of case {history.id}" in str(result)


def test_a_case_deleted_from_the_log_breaks_the_global_chain(session, history):
    started = _target(session, "started")
    session.execute(delete(Event).where(Event.instance_id == history.id))
    session.execute(update(ProcessInstance).where(ProcessInstance.id == history.id)
                    .values(audit_seq=0, audit_hash=None))  # a thorough forger resets the case's head too
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.chain == audit.GLOBAL_CHAIN and result.seq == started.seq + 1
    assert "missing" in result.problem


def test_one_case_is_checked_from_its_own_events(session, history):
    intact = audit.verify_case(history, audit.events_of(session, history.id))
    assert intact.ok and intact.count == 10
    completed = _target(session)
    original = dict(completed.data)
    session.execute(update(Event).where(Event.id == completed.id).values(data={"values": {"decision": "x"}}))
    session.commit()
    broken = audit.verify_case(history, audit.events_of(session, history.id))
    assert not broken.ok and broken.event_id == completed.id and broken.chain == history.id
    session.execute(delete(Event).where(Event.instance_id == history.id, Event.kind == "ended"))
    session.execute(update(Event).where(Event.id == completed.id).values(data=original))
    session.commit()
    assert "head" in audit.verify_case(history, audit.events_of(session, history.id)).problem


def test_inserted_event_is_named(session, history):
    session.execute(text("INSERT INTO events (kind, at, data) VALUES ('completed', '2026-01-01 00:00:00', '{}')"))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and "inserted" in result.problem and result.event_id is not None


def test_inserted_event_with_forged_sequence_is_named(session, history):
    head = session.get(AuditHead, 1)
    session.execute(text(
        "INSERT INTO events (kind, at, data, seq, prev_hash, hash) "
        "VALUES ('completed', '2026-01-01 00:00:00', '{}', :seq, :prev, :hash)"
    ), {"seq": head.last_seq + 1, "prev": head.last_hash, "hash": "f" * 64})
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.seq == head.last_seq + 1


def test_cli_verify(database_url, monkeypatch, session, history):
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", database_url)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "chain intact" in ok.output
    victim = _target(session)
    session.execute(delete(Event).where(Event.id == victim.id))
    session.commit()
    broken = runner.invoke(main, ["audit", "verify"])
    assert broken.exit_code == 1 and f"chain broken at event #{victim.seq + 1}" in broken.output
