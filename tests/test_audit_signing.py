"""Audit anchors outside the database: signed chain heads, signed checkpoints, the key file."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select, update

from engine import actions, audit, audit_signing, definitions, history, inbox, schema, users
from engine.core import WorkflowEngine
from engine.db import AuditHead, Event, ProcessDefinition, ProcessInstance, make_engine
from web.cli import main
from workflows import setup

MINI = (Path(__file__).parent / "data" / "mini_approval.bpmn").read_text()


@pytest.fixture
def workflow_engine() -> WorkflowEngine:
    """An engine of the test's own, with the test's key file (``DEPTFLOW_AUDIT_KEY``, per test)."""
    return WorkflowEngine(audit_key=audit_signing.key_path())


@pytest.fixture
def signer(session):
    """The configured key (``DEPTFLOW_AUDIT_KEY``, per test), created as ``deptflow init`` does."""
    path = audit_signing.key_path()
    assert audit_signing.create_key(path)
    signer = audit_signing.load_signer(path)
    audit_signing.sign_unsigned_heads(session, signer)
    session.commit()
    return signer


def _case(session, user, decisions=("approve",)) -> ProcessInstance:
    """A finished mini_approval case (deployed first when needed)."""
    if session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.process_key == "mini_approval")) is None:
        definitions.deploy(session, user("owen"), MINI)
        session.commit()
    started = actions.start_process(session, user("steve"), "mini_approval", {"title": "Van", "amount": "3"})
    instance = session.get(ProcessInstance, started.id)
    session.commit()
    for decision in decisions:
        [task] = [t for t in inbox.inbox(session, user("mark")).available if t.instance_id == instance.id]
        actions.claim(session, user("mark"), task.id)
        session.commit()
        actions.complete_task(session, user("mark"), task.id, {"decision": decision})
        session.commit()
    return instance


def _rewrite(session, instance_id: int, key=None) -> int:
    """What a database writer does: change the first event of a case's chain, recompute every
    hash from there and move the case's head; ``key`` re-signs the head (someone holding the key).

    :returns: the case head's sequence number
    """
    events = list(session.scalars(select(Event).where(Event.chain == instance_id).order_by(Event.seq)))
    events[0].data = {**events[0].data, "note": "forged"}
    previous = events[0].prev_hash
    for event in events:
        event.prev_hash = previous
        event.hash = previous = audit.event_hash(event)
    head = events[-1]
    session.execute(update(ProcessInstance).where(ProcessInstance.id == instance_id).values(
        audit_seq=head.seq, audit_hash=head.hash,
        audit_signature=key.sign_head(instance_id, head.seq, head.hash) if key is not None else None))
    session.commit()
    return head.seq


def test_every_head_update_is_signed(session, user, signer):
    instance = _case(session, user)
    session.refresh(instance)
    global_head = session.get(AuditHead, 1)
    for chain, seq, hash_, signature in [(0, global_head.last_seq, global_head.last_hash, global_head.last_signature),
                                         (instance.id, instance.audit_seq, instance.audit_hash,
                                          instance.audit_signature)]:
        assert audit_signing.head_signature_valid(signer.public_key, chain, seq, hash_, signature), chain
    assert audit.verify(session).ok


def test_rewrite_without_the_key_fails_the_head_signature(session, user, signer):
    instance = _case(session, user)
    seq = _rewrite(session, instance.id)
    result = audit.verify(session)
    assert not result.ok and (result.chain, result.seq) == (instance.id, seq)
    assert "signature" in result.problem, str(result)


def test_the_case_history_page_checks_its_head_signature(session, user, signer):
    instance = _case(session, user)
    assert history.instance_history(session, user("alice"), instance.id).chain.ok
    _rewrite(session, instance.id)  # hashes recomputed, head moved, but no key to sign it
    session.expire_all()
    chain = history.instance_history(session, user("alice"), instance.id).chain
    assert not chain.ok and "signature" in chain.problem


def test_rewrite_with_a_forged_signature_fails(session, user, signer):
    instance = _case(session, user)
    seq = _rewrite(session, instance.id, audit_signing.AuditSigner(Ed25519PrivateKey.generate()))
    result = audit.verify(session)
    assert not result.ok and (result.chain, result.seq) == (instance.id, seq) and "signature" in result.problem


def test_removed_signature_is_reported(session, user, signer):
    _case(session, user)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_signature=None))
    session.commit()
    result = audit.verify(session)
    assert not result.ok and result.chain == audit.GLOBAL_CHAIN and "not signed" in result.problem


def test_rewrite_resigned_with_the_key_is_caught_by_an_earlier_checkpoint(session, user, signer):
    instance = _case(session, user, decisions=("reject", "approve"))
    checkpoint = audit_signing.take_checkpoint(session, signer)
    checkpoint = audit_signing.read_checkpoint(checkpoint.to_json(), "early.json")
    later = _case(session, user)  # the log goes on after the checkpoint
    assert audit.verify(session, checkpoints=[checkpoint]).ok
    _rewrite(session, instance.id, key=signer)
    assert audit.verify(session).ok  # the key holder's rewrite passes the chain and the signatures...
    result = audit.verify(session, checkpoints=[checkpoint])  # ...but not the checkpoint
    assert not result.ok and (result.chain, result.seq) == (instance.id, instance.audit_seq)
    assert "early.json" in result.problem and "rewritten" in result.problem
    assert later.id != instance.id


def test_truncation_resigned_with_the_key_is_caught_by_a_checkpoint(session, user, signer):
    instance = _case(session, user)
    checkpoint = audit_signing.read_checkpoint(audit_signing.take_checkpoint(session, signer).to_json(), "cp.json")
    newest = session.scalars(select(Event).where(Event.chain == instance.id).order_by(Event.seq.desc())).first()
    session.delete(newest)
    seq, hash_ = newest.seq - 1, newest.prev_hash
    session.execute(update(ProcessInstance).where(ProcessInstance.id == instance.id).values(
        audit_seq=seq, audit_hash=hash_, audit_signature=signer.sign_head(instance.id, seq, hash_)))
    session.commit()
    assert audit.verify(session).ok
    result = audit.verify(session, checkpoints=[checkpoint])
    assert not result.ok and (result.chain, result.seq) == (instance.id, newest.seq) and "ends before" in result.problem


def test_altered_checkpoint_is_refused(session, user, signer):
    _case(session, user)
    data = json.loads(audit_signing.take_checkpoint(session, signer).to_json())
    data["heads"][-1]["hash"] = "0" * 64
    with pytest.raises(audit_signing.CheckpointError, match="signature is not valid"):
        audit_signing.read_checkpoint(json.dumps(data), "cp.json")
    with pytest.raises(audit_signing.CheckpointError, match="not readable"):
        audit_signing.read_checkpoint("{", "cp.json")
    other = audit_signing.AuditSigner(Ed25519PrivateKey.generate())  # re-signed with a key of one's own
    forged = audit_signing.take_checkpoint(session, signer)
    forged.public_key, forged.signature = other.public_hex, ""
    forged.signature = other.sign(forged.message())
    result = audit.verify(session, checkpoints=[audit_signing.read_checkpoint(forged.to_json(), "forged.json")])
    assert not result.ok and "another key" in result.problem


def test_checkpoint_refuses_a_head_without_a_valid_signature(session, user, signer):
    instance = _case(session, user)
    _rewrite(session, instance.id)
    with pytest.raises(audit_signing.CheckpointError, match=f"case {instance.id}"):
        audit_signing.take_checkpoint(session, signer)


def test_database_upgraded_from_0002_verifies_and_signs_from_then_on(database_url, monkeypatch, user, session):
    instance_id = _case(session, user).id  # no key yet: unsigned heads
    session.close()
    plain = create_engine(database_url)  # SQLite: without make_engine's foreign keys, as batch downgrades need
    config = schema.alembic_config()
    with plain.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    plain.dispose()
    engine = make_engine(database_url)
    schema.upgrade(engine)  # 0003 without a key: the unsigned heads still verify
    sessions = WorkflowEngine(audit_key=audit_signing.key_path(database_url)).session_factory(engine)
    with sessions() as fresh:
        assert audit.verify(fresh).ok
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", database_url)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert "audit key created" in result.output and "signed 2 chain heads written before the key" in result.output
    signer = audit_signing.configured_signer(database_url)
    with sessions() as fresh:
        assert audit.verify(fresh).ok, str(audit.verify(fresh))
        head = fresh.get(ProcessInstance, instance_id)
        assert audit_signing.head_signature_valid(signer.public_key, instance_id, head.audit_seq, head.audit_hash,
                                                  head.audit_signature)
        later = _case(fresh, lambda name: users.user_by_name(fresh, name))
        assert fresh.get(ProcessInstance, later.id).audit_signature is not None
        assert audit.verify(fresh).ok
    engine.dispose()


def test_init_creates_the_key_once_with_mode_0600(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.delenv("DEPTFLOW_AUDIT_KEY")  # the default: beside the SQLite file
    key = tmp_path / audit_signing.KEY_FILE_NAME
    runner = CliRunner()
    first = runner.invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert f"audit key created: {key}" in first.output
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    content = key.read_bytes()
    second = runner.invoke(main, ["init"])
    assert second.exit_code == 0 and f"audit key kept: {key}" in second.output
    assert key.read_bytes() == content
    assert runner.invoke(main, ["audit", "verify"]).output.startswith("chain intact, ")


def test_cli_checkpoint_and_verify(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", url)
    runner = CliRunner()
    setup.initialise(url, demo=False)  # a database, but no key yet
    no_key = runner.invoke(main, ["audit", "checkpoint"])
    assert no_key.exit_code == 1 and "no audit key" in no_key.output
    assert runner.invoke(main, ["init", "--demo"]).exit_code == 0
    first, second = tmp_path / "cp1.json", tmp_path / "cp2.json"
    written = runner.invoke(main, ["audit", "checkpoint", "-o", str(first)])
    assert written.exit_code == 0 and "checkpoint of" in written.output, written.output
    printed = runner.invoke(main, ["audit", "checkpoint"])
    assert printed.exit_code == 0 and json.loads(printed.output)["format"] == audit_signing.CHECKPOINT_FORMAT
    second.write_text(printed.output)
    checked = runner.invoke(main, ["audit", "verify", "--checkpoints", str(first), str(second)])
    assert checked.exit_code == 0, checked.output
    first_line = checked.output.splitlines()[0]
    assert first_line.startswith("chain intact, ") and first_line.endswith(", 2 checkpoints matched")

    engine = make_engine(url)
    with WorkflowEngine().session_factory(engine)() as session:
        case = session.scalars(select(ProcessInstance).where(ProcessInstance.audit_seq > 1)
                               .order_by(ProcessInstance.id)).first()
        _rewrite(session, case.id, key=audit_signing.configured_signer(url))
        case_id, head_seq = case.id, case.audit_seq
    engine.dispose()
    assert runner.invoke(main, ["audit", "verify"]).exit_code == 0  # re-signed with the key: only checkpoints see it
    caught = runner.invoke(main, ["audit", "verify", "--checkpoints", str(first)])
    assert caught.exit_code == 1 and caught.output.count("\n") == 1
    assert f"event #{head_seq} of the chain of case {case_id}" in caught.output and "rewritten" in caught.output

    tampered = json.loads(first.read_text())
    tampered["heads"][0]["seq"] += 1
    first.write_text(json.dumps(tampered))
    refused = runner.invoke(main, ["audit", "verify", "--checkpoints", str(first)])
    assert refused.exit_code == 1 and refused.output.count("\n") == 1 and "signature is not valid" in refused.output


def test_auditors_download_a_checkpoint(app, login_as):
    with app.app_context():
        assert audit_signing.create_key(audit_signing.key_path(app.config["DATABASE_URL"]))
    auditor = login_as("alice")
    assert b"/audit/checkpoint.json" in auditor.get("/audit").data
    response = auditor.get("/audit/checkpoint.json")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert audit_signing.read_checkpoint(response.get_data(as_text=True)).heads[0][0] == audit.GLOBAL_CHAIN
    assert login_as("mark").get("/audit/checkpoint.json").status_code == 403


def test_signing_a_head_is_cheap():
    signer = audit_signing.AuditSigner(Ed25519PrivateKey.generate())
    start = time.perf_counter()
    for seq in range(200):
        signature = signer.sign_head(7, seq, "a" * 64)
        assert audit_signing.head_signature_valid(signer.public_key, 7, seq, "a" * 64, signature)
    assert (time.perf_counter() - start) / 200 < 0.005  # about 0.1 ms on the CI machine


def test_auditor_without_the_private_key_checks_heads_with_the_checkpoints_key(session, user, signer, monkeypatch,
                                                                               tmp_path):
    checkpoint = audit_signing.read_checkpoint(audit_signing.take_checkpoint(session, signer).to_json(), "cp.json")
    instance = _case(session, user)  # after the checkpoint: only the heads' signatures vouch for it
    monkeypatch.setenv("DEPTFLOW_AUDIT_KEY", str(tmp_path / "elsewhere" / "no.key"))  # the auditor's machine
    assert str(audit.verify(session, checkpoints=[checkpoint])).endswith(", 1 checkpoints matched")
    seq = _rewrite(session, instance.id)
    result = audit.verify(session, checkpoints=[checkpoint])
    assert not result.ok and (result.chain, result.seq) == (instance.id, seq) and "signature" in result.problem
