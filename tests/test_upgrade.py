"""A database with data at any earlier revision upgrades to head and keeps every value (SQLite and PostgreSQL).

For every revision R before head (read from the migration scripts, so a new revision is covered
without touching this file): a new database is brought to R, filled with generic rows for every
table of R's schema (reflected; parents before children, typed values, NULL where allowed) and
with realistic rows for the migrations that transform data, then upgraded to head. Every row
must still be there with the same value in every column R had; the data migrations of the
revisions applied are checked on their own (``DATA_CHECKS``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import JSON, Boolean, Connection, DateTime, Float, Integer, MetaData, String, Table, insert, select

from engine import schema
from engine.db import make_engine
from web.cli import main

SCRIPTS = ScriptDirectory.from_config(schema.alembic_config())
#: every revision, oldest first
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
HEAD = SCRIPTS.get_current_head()
EARLIER = REVISIONS[:-1]
ROWS = 3  # per table; the last one has NULL in every nullable column


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database without any schema, once SQLite and once PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'upgrade.sqlite3'}"
    return request.getfixturevalue("empty_postgres_url")


def _migrate(url: str, revision: str) -> None:
    """``alembic upgrade`` through the migration environment, as an operator would run it."""
    command.upgrade(schema.alembic_config(url), revision)


def _reflect(connection: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(connection)
    metadata.remove(metadata.tables["alembic_version"])
    return metadata


# --- generic rows ------------------------------------------------------------------------------


def _value(column, row: int) -> Any:
    """A value of the column's type, different in each row (unique constraints hold)."""
    kind = column.type
    if isinstance(kind, Boolean):
        return row % 2 == 0
    if isinstance(kind, Integer):
        return 1000 * (row + 1) + len(column.name)
    if isinstance(kind, Float):
        return 1000.25 * (row + 1) + len(column.name)
    if isinstance(kind, DateTime):
        moment = datetime(2026, 3, 14, 15, 9, 26, 535897) + timedelta(days=row, seconds=len(column.name))
        return moment.replace(tzinfo=UTC) if kind.timezone else moment
    if isinstance(kind, JSON):
        return {"row": row, "column": column.name, "list": [1, 2.5, "zwölf", None, True], "nested": {"a": []}}
    if isinstance(kind, String):  # VARCHAR and TEXT alike
        text_ = f"{row}:{column.name} – ü"
        length = getattr(kind, "length", None)
        return text_[:length] if length else text_ + " " + "long text " * 50
    raise NotImplementedError(f"no sample value for {column.table.name}.{column.name} of type {kind!r}: add one")


def _generic_rows(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """ROWS rows per table; a foreign key of row i refers to row i of the referred table."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        rows[table.name] = []
        for i in range(ROWS):
            row = {}
            for column in table.columns:
                nullable = column.nullable and not column.primary_key
                if nullable and i == ROWS - 1:
                    row[column.name] = None
                elif column.foreign_keys:
                    target = next(iter(column.foreign_keys)).column
                    row[column.name] = rows[target.table.name][i][target.name]
                else:
                    row[column.name] = _value(column, i)
            rows[table.name].append(row)
    return rows


# --- realistic rows where a migration transforms data ------------------------------------------

#: the roles deptflow shipped with before 0002, and one an organisation added
SHIPPED_ROLES = ["admin", "auditor", "process_owner", "general_manager", "marketing_manager", "sales_rep"]
OWN_ROLE = "dealer_liaison"


def _realistic_0001(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """Roles by the keys 0002 gives permissions to (and others), users holding them."""
    roles = [{"key": key, "name": key.replace("_", " ").title(), "description": ""} for key in
             [*SHIPPED_ROLES, OWN_ROLE]]
    users = [{"id": 100 + i, "username": f"user_{role['key']}", "full_name": role["name"], "email": None,
              "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", "active": True,
              "email_notifications": i % 2 == 1, "created_at": datetime(2026, 11, 1, 8, i)}
             for i, role in enumerate(roles)]
    user_roles = [{"user_id": user["id"], "role_key": role["key"]} for user, role in zip(users, roles, strict=True)]
    return {"roles": roles, "users": users, "user_roles": user_roles}


def _realistic_0002(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0001, the roles now with their permissions and the users with a session generation;
    audit heads written before 0003 signed them (the rows of cases and the global head unsigned)."""
    rows = _realistic_0001(metadata)
    for role in rows["roles"]:
        role["permissions"] = {"admin": ["administer", "audit", "model", "read_all_cases"]}.get(role["key"], [])
    for n, user in enumerate(rows["users"]):
        user["session_generation"] = n
    return rows


def _realistic_0003(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0002: 0003 added only signature columns, which rows written before it leave empty."""
    return _realistic_0002(metadata)


def _realistic_0004(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0003, the roles now active or not, some managed by another role (0004's columns)."""
    rows = _realistic_0003(metadata)
    for n, role in enumerate(rows["roles"]):
        role["active"] = n != len(rows["roles"]) - 1
        role["manager_role"] = "admin" if role["key"] == "sales_rep" else None
    return rows


def _realistic_0005(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0004, a user with an API token (0005's table); 0006 adds an empty table of group mappings."""
    rows = _realistic_0004(metadata)
    user = rows["users"][0]
    rows["api_tokens"] = [{"id": 1, "user_id": user["id"], "name": "crm", "token_hash": "a" * 64,
                           "prefix": "dft_aaaaaaaa", "roles": [rows["user_roles"][0]["role_key"]],
                           "created_at": datetime(2026, 11, 30, 9, 0), "expires_at": datetime(2026, 12, 30, 9, 0),
                           "last_used_at": None, "revoked_at": None}]
    return rows


def _realistic_0014(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0005, and a finished case of an organisation's own process: its two completed tasks, an open one, and
    its events (``started`` in the global chain, a gateway decision in its own), hash-chained as the engine wrote
    them. 0015 copies the case's process onto the tasks and events (not into the hash: the log still verifies)."""
    from types import SimpleNamespace

    from engine.audit import GENESIS, event_hash

    rows = _realistic_0005(metadata)
    starter = rows["users"][0]["id"]
    at = datetime(2026, 11, 2, 9, 0)
    rows["processes"] = [{"key": VISITS, "title": "Dealer visits", "description": "", "starter_roles": [],
                          "owner_role": None, "separated_tasks": [], "separated_pairs": [], "default_due": None,
                          "default_priority": None}]
    rows["process_definitions"] = [{"id": CASE, "process_key": VISITS, "version": 1, "bpmn_process_id": VISITS,
                                    "name": "Dealer visits", "xml": "<definitions/>", "sha256": "b" * 64,
                                    "status": "published", "published_by_id": starter, "published_at": at,
                                    "note": ""}]
    events = [SimpleNamespace(id=CASE, chain=0, seq=1, at=at, kind="started", instance_id=CASE, actor_id=starter,
                              task_id=None, element_id=None, data={"title": "Visit 1"}, prev_hash=GENESIS),
              SimpleNamespace(id=CASE + 1, chain=CASE, seq=1, at=at + timedelta(hours=3), kind="gateway_decision",
                              instance_id=CASE, actor_id=None, task_id=None, element_id="gw_ok",
                              data={"flow": "Flow_ok", "name": "OK?"}, prev_hash=None)]
    events[0].hash = event_hash(events[0])
    events[1].prev_hash = events[0].hash
    events[1].hash = event_hash(events[1])
    rows["audit_head"] = [{"id": 1, "last_seq": 1, "last_hash": events[0].hash, "last_signature": None}]
    rows["process_instances"] = [{"id": CASE, "definition_id": CASE, "process_key": VISITS, "title": "Visit 1",
                                  "business_key": None, "status": "completed", "started_by_id": starter,
                                  "started_at": at, "ended_at": at + timedelta(hours=5), "state": "{}",
                                  "data": {"region": "North"}, "version_id": 3, "next_timer_at": None,
                                  "audit_seq": 1, "audit_hash": events[1].hash, "audit_signature": None}]
    rows["human_tasks"] = [{"id": CASE + n, "instance_id": CASE, "spiff_task_id": f"t{n}", "element_id": element,
                            "name": element.title(), "assignee_id": starter, "claimed_at": at,
                            "created_at": at + timedelta(hours=n), "due_at": None, "priority": 50,
                            "status": status, "completed_by_id": starter if status == "completed" else None,
                            "completed_at": at + timedelta(hours=n + 1) if status == "completed" else None,
                            "submitted": {}, "due_soon_notified": False, "overdue_notified": False,
                            "candidate_roles": [], "follow_up_at": None}
                           for n, element, status in ((1, "visit", "completed"), (2, "report", "completed"),
                                                      (3, "follow_up", "open"))]
    rows["events"] = [{name: getattr(e, name) for name in ("id", "chain", "seq", "prev_hash", "hash", "instance_id",
                                                            "at", "kind", "actor_id", "task_id", "element_id",
                                                            "data")} for e in events]
    return rows


def _realistic_0015(metadata: MetaData) -> dict[str, list[dict[str, Any]]]:
    """As at 0014, with the case's process on its tasks and events, as the engine writes them from 0015 on."""
    rows = _realistic_0014(metadata)
    for row in rows["human_tasks"] + rows["events"]:
        row["process_key"] = VISITS
    return rows


VISITS = "dealer_visits"
#: the ids of its rows: above what ``deptflow init`` numbers (PostgreSQL's sequences do not see explicit ids)
CASE = 9001

#: revision R -> realistic rows valid at R, for the migrations after R that transform data
REALISTIC: dict[str, Callable[[MetaData], dict[str, list[dict[str, Any]]]]] = {
    "0001": _realistic_0001, "0002": _realistic_0002, "0003": _realistic_0003, "0004": _realistic_0004,
    "0005": _realistic_0005, "0006": _realistic_0005, "0007": _realistic_0005,
    # later revisions add tables (external tasks, comments and attachments, decisions, message subscriptions) and
    # indexes; 0013 adds case summaries (its backfill is checked in tests/test_dashboard.py): the rows of 0005
    # exercise them
    "0008": _realistic_0005, "0009": _realistic_0005, "0010": _realistic_0005, "0011": _realistic_0005,
    "0012": _realistic_0005, "0013": _realistic_0005,
    # 0015 copies each case's process onto its tasks and events
    "0014": _realistic_0014,
    # 0016 indexes the cases' titles and business keys (trigrams, PostgreSQL only) and adds statistics on tasks
    "0015": _realistic_0015,
    # 0017 adds the dashboard's roll-up tables, empty (the first request or the worker fills them)
    "0016": _realistic_0015}


# --- checks of each revision's data migration --------------------------------------------------


def _check_0002(connection: Connection, metadata: MetaData) -> None:
    shipped = SCRIPTS.get_revision("0002").module.SHIPPED_PERMISSIONS
    roles = metadata.tables["roles"]
    permissions = dict(connection.execute(select(roles.c.key, roles.c.permissions)).all())
    for key, granted in permissions.items():
        assert granted == shipped.get(key, []), key
    assert set(shipped) <= set(permissions), "the realistic rows hold every shipped role"
    users = metadata.tables["users"]
    assert set(connection.scalars(select(users.c.session_generation))) == {0}


def _check_0015(connection: Connection, metadata: MetaData) -> None:
    """Every task and every event of a case carries the case's process; events outside a case none."""
    instances = metadata.tables["process_instances"]
    for name in ("human_tasks", "events"):
        table = metadata.tables[name]
        rows = connection.execute(select(table.c.process_key, instances.c.process_key)
                                  .outerjoin(instances, instances.c.id == table.c.instance_id)).all()
        assert rows and all(copied == original for copied, original in rows), (name, rows)
    if VISITS in set(connection.scalars(select(instances.c.process_key))):  # the realistic rows of 0014
        tasks = metadata.tables["human_tasks"]
        assert set(connection.scalars(select(tasks.c.process_key).where(tasks.c.instance_id == CASE))) == {VISITS}


#: revision -> a check of what its upgrade did to existing data, run when an upgrade applied it
DATA_CHECKS: dict[str, Callable[[Connection, MetaData], None]] = {"0002": _check_0002, "0015": _check_0015}


# --- the tests ---------------------------------------------------------------------------------


def _fill(url: str, revision: str) -> dict[str, list[dict[str, Any]]]:
    """Generic and realistic rows at ``revision``; what was inserted, by table."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            metadata = _reflect(connection)
            rows = _generic_rows(metadata)
            for table, extra in REALISTIC.get(revision, lambda _m: {})(metadata).items():
                rows[table] = rows[table] + extra
            for table in metadata.sorted_tables:
                connection.execute(insert(table), rows[table.name])
    finally:
        engine.dispose()
    return rows


def _read(connection: Connection, table: Table, columns: list[str]) -> list[dict[str, Any]]:
    primary_key = [table.c[c.name] for c in table.primary_key.columns]
    query = select(*(table.c[name] for name in columns)).order_by(*primary_key)
    return [dict(row._mapping) for row in connection.execute(query)]


def _sorted(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = [c.name for c in table.primary_key.columns]
    return sorted(rows, key=lambda row: tuple(row[k] for k in keys))


def _applied(start: str) -> list[str]:
    return REVISIONS[REVISIONS.index(start) + 1:]


def test_revisions_are_one_line():
    """One head, every revision reachable from it: the list the tests below walk is the whole history."""
    assert len(SCRIPTS.get_heads()) == 1 and REVISIONS[0] == "0001" and REVISIONS[-1] == HEAD
    assert len(REVISIONS) >= 2 and EARLIER, "nothing to upgrade from"


@pytest.mark.parametrize("start", EARLIER)
def test_upgrade_keeps_every_row(start, blank_url):
    _migrate(blank_url, start)
    inserted = _fill(blank_url, start)
    engine = make_engine(blank_url)
    with engine.connect() as connection:
        before = _reflect(connection)
        read_at_start = {t.name: _read(connection, t, list(t.columns.keys())) for t in before.sorted_tables}
    engine.dispose()
    for table in before.sorted_tables:  # what was written reads back the same (the generator's own check)
        assert read_at_start[table.name] == _sorted(table, inserted[table.name]), table.name

    _migrate(blank_url, "head")

    engine = make_engine(blank_url)
    try:
        with engine.connect() as connection:
            assert schema.problem(blank_url) is None, "at head"
            after = _reflect(connection)
            for table in before.sorted_tables:
                assert table.name in after.tables, f"table {table.name} of {start} is gone"
                survived = _read(connection, after.tables[table.name], list(table.columns.keys()))
                assert survived == read_at_start[table.name], f"{table.name}: rows changed by the upgrade from {start}"
            for revision in _applied(start):
                if revision in DATA_CHECKS:
                    DATA_CHECKS[revision](connection, after)
    finally:
        engine.dispose()


def test_every_data_migration_has_a_check_and_realistic_rows():
    """A revision that is listed as transforming data needs both halves here."""
    for revision in DATA_CHECKS:
        assert any(start in REALISTIC for start in REVISIONS[:REVISIONS.index(revision)]), revision


@pytest.mark.parametrize("start", EARLIER)
def test_init_upgrades_a_database_with_data(start, blank_url, monkeypatch):
    """``deptflow init`` on a database at an older revision: upgraded to head, the data kept,
    the catalogue installed beside it; after it the other commands accept the database."""
    _migrate(blank_url, start)
    realistic = REALISTIC.get(start)
    assert realistic is not None, f"add realistic rows for {start} (REALISTIC)"
    engine = make_engine(blank_url)
    with engine.begin() as connection:
        metadata = _reflect(connection)
        rows = realistic(metadata)
        for table in metadata.sorted_tables:
            if rows.get(table.name):
                connection.execute(insert(table), rows[table.name])
    engine.dispose()
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", blank_url)
    runner = CliRunner()
    refused = runner.invoke(main, ["audit", "verify"])
    assert refused.exit_code == 2 and f"has schema {start}" in refused.stderr

    result = runner.invoke(main, ["init"])
    assert result.exit_code == 0, result.output

    engine = make_engine(blank_url)
    with engine.connect() as connection:
        after = _reflect(connection)
        users = after.tables["users"]
        kept = _read(connection, users, list(rows["users"][0]))
        assert [row for row in kept if row["id"] >= 100] == rows["users"]
        user_roles = after.tables["user_roles"]
        assert _read(connection, user_roles, ["user_id", "role_key"]) == rows["user_roles"]
        roles = after.tables["roles"]
        assert connection.scalar(select(roles.c.key).where(roles.c.key == OWN_ROLE)) == OWN_ROLE
    engine.dispose()
    verified = runner.invoke(main, ["audit", "verify"])
    assert verified.exit_code == 0, verified.output

