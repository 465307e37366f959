"""The deptflow command: init (idempotent) and deploy."""

from __future__ import annotations

import socket
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from engine.core import WorkflowEngine
from engine.db import ProcessDefinition, ProcessInstance, User, make_engine
from web.cli import main
from workflows.catalogue import PROCESSES, process_spec

MINI = Path(__file__).parent / "data" / "mini_approval.bpmn"


def _count(url: str, model) -> int:
    engine = make_engine(url)
    with WorkflowEngine().session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return count


def test_init_demo_twice_keeps_the_data(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", url)
    runner = CliRunner()
    first = runner.invoke(main, ["init", "--demo"])
    assert first.exit_code == 0, first.output
    assert "customer_complaint: version 1" in first.output and "demo users" in first.output
    assert "demo cases started: 5" in first.output
    counts = _count(url, User), _count(url, ProcessDefinition), _count(url, ProcessInstance)
    second = runner.invoke(main, ["init", "--demo"])
    assert second.exit_code == 0, second.output
    assert "demo cases started: 0" in second.output
    again = _count(url, User), _count(url, ProcessDefinition), _count(url, ProcessInstance)
    assert again == counts == (16, len(PROCESSES), 5)
    assert "chain intact" in runner.invoke(main, ["audit", "verify"]).output


def test_deploy_reports_versions_and_problems(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    result = runner.invoke(main, ["deploy", str(MINI)])
    assert result.exit_code == 0 and "mini_approval: version 1" in result.output
    broken = tmp_path / "broken.bpmn"
    broken.write_text(MINI.read_text().replace(' default="f3"', ""))
    result = runner.invoke(main, ["deploy", str(broken)])
    assert result.exit_code == 1
    assert "not deployed" in result.output and "[f3]" in result.output


def test_init_does_not_undo_a_version_published_by_a_process_owner(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    edited = tmp_path / "customer_complaint.bpmn"
    edited.write_text(process_spec("customer_complaint").path.read_text().replace(
        'name="Classify complaint"', 'name="Classify the complaint"'))
    result = runner.invoke(main, ["deploy", str(edited), "--note", "clearer name"])
    assert result.exit_code == 0 and "customer_complaint: version 2" in result.output
    again = runner.invoke(main, ["init"])
    assert "customer_complaint: version 1" in again.output, "the shipped file is version 1 already"
    assert _count(url, ProcessDefinition) == len(PROCESSES) + 1


def test_serve_refuses_a_port_in_use(monkeypatch):
    """gunicorn binds with reuse_port; without the check a second server would share the port silently."""
    monkeypatch.setenv("DEPTFLOW_SECRET_KEY", "test-key")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and f"127.0.0.1:{port} is in use" in result.output
