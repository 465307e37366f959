"""The deptflow command: init (idempotent), deploy, and every command's refusal of a database
that is missing or not at the current schema."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from engine import schema
from engine.core import WorkflowEngine
from engine.db import DashboardPeriod, ProcessDefinition, ProcessInstance, User, make_engine
from web.cli import main
from workflows.catalogue import PROCESSES, process_spec
from workflows.demo import HISTORY

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
    played = 17 + sum(HISTORY.values())  # the waiting and finished cases, the department's, the months of history
    assert f"demo cases started: {played}" in first.output
    counts = _count(url, User), _count(url, ProcessDefinition), _count(url, ProcessInstance)
    second = runner.invoke(main, ["init", "--demo"])
    assert second.exit_code == 0, second.output
    assert "demo cases started: 0" in second.output
    again = _count(url, User), _count(url, ProcessDefinition), _count(url, ProcessInstance)
    assert again == counts == (17, len(PROCESSES), played)  # 16 demo users and the scheduler (demo sales diaries)
    assert "chain intact" in runner.invoke(main, ["audit", "verify"]).output
    sealed = runner.invoke(main, ["dashboard", "reseal"])  # the demo's months of history, added up again
    assert sealed.exit_code == 0 and sealed.output.startswith("forgot 0 sealed days and months; sealed ")
    count = int(sealed.output.split("; sealed ")[1].split()[0])
    assert count > 0 and _count(url, DashboardPeriod) == count
    again = runner.invoke(main, ["dashboard", "reseal"])
    assert again.output.startswith(f"forgot {count} sealed days and months; sealed {count} again")


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


def test_serve_refuses_a_port_in_use(monkeypatch, sqlite_url):
    """gunicorn binds with reuse_port; without the check a second server would share the port silently."""
    monkeypatch.setenv("DEPTFLOW_SECRET_KEY", "test-key")
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", sqlite_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and f"127.0.0.1:{port} is in use" in result.output


# --- a database that is not there, or not at the current schema ---------------------------------

COMMANDS = [["deploy", str(MINI)], ["worker"], ["serve"], ["audit", "verify"]]


def _refused(args: list[str]):
    """Run a command that needs a database; it must exit 2 with one line on stderr and nothing else."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.output
    return result.stderr


def _files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("DEPTFLOW_SECRET_KEY", "test-key")  # serve would stop short of the database without it
    return monkeypatch


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_missing_sqlite_database_is_named_and_not_created(args, tmp_path, env):
    path = tmp_path / "missing" / "deptflow.sqlite3"
    env.setenv("DEPTFLOW_DATABASE_URL", f"sqlite:///{path}")
    message = _refused(args)
    assert message.startswith(f"deptflow: no database at {path}; run `deptflow init` first")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_the_default_database_is_in_the_data_directory_and_not_created(args, tmp_path, env):
    env.delenv("DEPTFLOW_DATABASE_URL", raising=False)
    env.setenv("DEPTFLOW_DATA_DIR", str(tmp_path / "data"))
    env.chdir(tmp_path)
    message = _refused(args)
    assert f"no database at {tmp_path / 'data' / 'deptflow.sqlite3'}" in message
    assert _files(tmp_path) == [], "no data directory, no instance/ directory, no file"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_an_empty_sqlite_database_has_no_schema(args, tmp_path, env):
    path = tmp_path / "empty.sqlite3"
    path.touch()
    env.setenv("DEPTFLOW_DATABASE_URL", f"sqlite:///{path}")
    message = _refused(args)
    assert message.startswith(f"deptflow: the database at {path} has no deptflow schema; run `deptflow init` first")
    assert _files(tmp_path) == ["empty.sqlite3"] and path.stat().st_size == 0


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_a_database_at_an_older_revision_is_to_be_upgraded(args, tmp_path, env):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = make_engine(url)
    schema.upgrade(engine, "0001")
    engine.dispose()
    env.setenv("DEPTFLOW_DATABASE_URL", url)
    message = _refused(args)
    assert "has schema 0001, this deptflow needs " in message and "run `deptflow init` to upgrade" in message


@pytest.mark.postgres
@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
def test_postgresql_missing_or_empty(args, empty_postgres_url, env):
    missing = empty_postgres_url + "_missing"
    env.setenv("DEPTFLOW_DATABASE_URL", missing)
    name = missing.rsplit("/", 1)[1]
    assert _refused(args).startswith(f"deptflow: no database {name} at ")
    env.setenv("DEPTFLOW_DATABASE_URL", empty_postgres_url)
    assert "has no deptflow schema; run `deptflow init` first" in _refused(args)
    engine = make_engine(empty_postgres_url)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == [], "nothing was created"
    engine.dispose()
