"""Shared fixtures: databases (SQLite and PostgreSQL), the app, logged-in clients.

Each test gets a database holding the schema, the catalogue and the demo organisation (argon2 hashing
and BPMN parsing happen once): a copy of a template file on SQLite, on PostgreSQL the test process's own
database set back to the template's rows after each test.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session
from support import corpus_dir, unavailable

from engine import clock, users
from engine.core import WorkflowEngine
from engine.db import Base, User, make_engine
from workflows import setup

PG_ADMIN_URL = os.environ.get("DEPTFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_TEMPLATE = f"deptflow_test_{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def _no_default_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests pass explicit database URLs; should one not, it finds an empty data directory of its
    own, never the user's database (``DEPTFLOW_DATA_DIR`` and ``XDG_DATA_HOME`` point there)."""
    data = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DEPTFLOW_DATABASE_URL", raising=False)
        patch.setenv("DEPTFLOW_DATA_DIR", str(data / "deptflow"))
        patch.setenv("XDG_DATA_HOME", str(data))
        yield


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """argon2 spends a tenth of a second or more on every hash and check by design; the tests log in a thousand
    times. In this process passwords are hashed with argon2's cheapest parameters (a hash carries its
    parameters, so checking one costs what making it did). The commands the tests run as subprocesses
    (``deptflow init``, ``serve``) hash with the real parameters, and test_cli checks them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(autouse=True)
def _no_audit_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test has its own (absent) audit signing key: never the developer's ``instance/`` one."""
    monkeypatch.setenv("DEPTFLOW_AUDIT_KEY", str(tmp_path / "audit-signing.key"))


@pytest.fixture
def corpus() -> Path:
    """The shared BPMN corpus's directory. Missing, the test fails under ``DEPTFLOW_REQUIRE_CORPUS=1`` (CI) and is
    skipped otherwise."""
    path = corpus_dir()
    if not path.is_dir():
        unavailable("CORPUS", f"the shared BPMN corpus is missing at {path}")
    return path


def _install(url: str) -> None:
    setup.initialise(url, demo=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    _install(f"sqlite:///{path}")
    return path


def _pg_admin():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _postgres_available() -> str | None:
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return str(exc).splitlines()[0]
    return None


def _pg_url(database: str) -> str:
    return re.sub(r"/[^/]*$", f"/{database}", PG_ADMIN_URL)


def _require_postgres() -> None:
    """Skip when PostgreSQL is not reachable; fail instead under ``DEPTFLOW_REQUIRE_POSTGRES=1`` (CI)."""
    problem = _postgres_available()
    if problem:
        unavailable("POSTGRES", f"PostgreSQL is not reachable: {problem}")


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (``deptflow_test_empty_<pid>``: no schema), dropped afterwards."""
    _require_postgres()
    name = f"deptflow_test_empty_{os.getpid()}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


class PostgresCopy:
    """One PostgreSQL database per test process, set back to the template's rows after each test.

    Copying a database for every test (``CREATE DATABASE … TEMPLATE``) and dropping it afterwards cost
    0.5–2 s a test on a busy machine (both wait for the server's files); emptying the tables and copying the
    template's rows back from a snapshot schema in the same database costs a few milliseconds. The database
    is the same as a copy would be: every table's rows, and every sequence where the template left it.
    """

    SNAPSHOT = "deptflow_snapshot"

    def __init__(self, name: str):
        self.name = name
        self.url = _pg_url(name)
        self.engine = create_engine(self.url)
        with self.engine.begin() as conn:
            present = set(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
            # parents before children, so the rows go back in without breaking a foreign key
            ordered = [t.name for t in Base.metadata.sorted_tables if t.name in present]
            self.tables = ordered + sorted(present - set(ordered))
            conn.execute(text(f"CREATE SCHEMA {self.SNAPSHOT}"))
            for table in self.tables:
                conn.execute(text(f'CREATE TABLE {self.SNAPSHOT}."{table}" AS TABLE public."{table}"'))
            filled = [t for t in self.tables
                      if conn.scalar(text(f'SELECT EXISTS (SELECT FROM public."{t}")'))]
            sequences = conn.execute(text(
                "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences "
                "WHERE schemaname = 'public'")).all()
        # DELETE, not TRUNCATE: a truncated table gets new files, which costs more than a test's few rows
        statements = [f'DELETE FROM public."{t}"' for t in reversed(self.tables)]
        statements += [f'INSERT INTO public."{t}" OVERRIDING SYSTEM VALUE SELECT * FROM {self.SNAPSHOT}."{t}"'
                       for t in filled]
        statements += [f"SELECT setval('{seq}', {last}, true)" if last is not None
                       else f"SELECT setval('{seq}', 1, false)" for seq, last in sequences]
        self.reset_sql = ";\n".join(statements)

    def reset(self) -> None:
        """Back to the template's rows; connections a test left open are closed first."""
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": self.name})
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self.reset_sql)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[PostgresCopy]:
    """This test process's PostgreSQL database with the schema, catalogue and demo organisation."""
    _require_postgres()
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {PG_TEMPLATE}"))
        # a test database need not survive a power cut: commits return before the log reaches the disk
        conn.execute(text(f"ALTER DATABASE {PG_TEMPLATE} SET synchronous_commit = off"))
    _install(_pg_url(PG_TEMPLATE))
    copy = PostgresCopy(PG_TEMPLATE)
    yield copy
    copy.engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)"))
    admin.dispose()


def _sqlite_copy(template: Path, tmp_path: Path) -> str:
    target = tmp_path / "deptflow.sqlite3"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """This test process's PostgreSQL database, holding the template's rows; set back after the test."""
    database: PostgresCopy = request.getfixturevalue("postgres_template")
    yield database.url
    database.reset()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def workflow_engine() -> WorkflowEngine:
    """One engine object for the whole run, as a server has one: its definition cache is shared."""
    return WorkflowEngine()


@pytest.fixture
def sessions(database_url: str, workflow_engine: WorkflowEngine):
    engine = make_engine(database_url)
    yield workflow_engine.session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(sessions) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def user(session: Session):
    """Look up a demo user by username: ``user("mark")``."""

    def lookup(username: str) -> User:
        found = users.user_by_name(session, username)
        assert found is not None, username
        return found

    return lookup


# --- web ------------------------------------------------------------------------------


@pytest.fixture
def app(sqlite_url: str, workflow_engine: WorkflowEngine):
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False,
                      "WORKFLOW_ENGINE": workflow_engine})
    yield app
    app.extensions["deptflow_engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def login_as(app):
    """A fresh test client logged in as a demo user: ``login_as("mark")``."""

    def login(username: str):
        client = app.test_client()
        response = client.post("/login", data={"username": username, "password": setup.DEMO_PASSWORD})
        assert response.status_code == 302, response.data[:500]
        return client

    return login


# --- time ------------------------------------------------------------------------------


class MovingClock:
    """The engine's clock in a test: set ``now`` or ``advance(minutes=…)``; nothing sleeps."""

    def __init__(self, now: datetime):
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def now(request: pytest.FixtureRequest):
    """A controlled engine clock starting at the module's ``T0`` (default 2026-11-26 09:00 UTC)."""
    moving = MovingClock(getattr(request.module, "T0", datetime(2026, 11, 26, 9, 0)))
    clock.set_clock(lambda: moving.now)
    yield moving
    clock.set_clock(None)
