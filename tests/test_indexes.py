"""The inbox and the auditors' search are served by indexes on PostgreSQL (EXPLAIN)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from engine import history, inbox, users
from engine.core import WorkflowEngine
from engine.db import make_engine


@pytest.fixture
def pg_session(postgres_url):
    engine = make_engine(postgres_url)
    with WorkflowEngine().session_factory(engine)() as session:
        session.execute(text("SET enable_seqscan = off"))  # tiny test tables: ask whether an index *can* serve
        yield session
    engine.dispose()


def _plan(session, query) -> str:
    sql = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {sql}")))


def test_inbox_queries_use_indexes(pg_session):
    mark = users.user_by_name(pg_session, "mark")
    assigned, available = inbox.inbox_queries(mark)
    for query in (inbox.page_query(assigned, inbox.PAGE_SIZE), inbox.page_query(available, inbox.PAGE_SIZE)):
        plan = _plan(pg_session, query)
        assert "Seq Scan on human_tasks" not in plan, plan
        assert "ix_tasks_" in plan or "ix_task_candidates_role" in plan, plan


def test_auditor_search_uses_indexes(pg_session):
    plan = _plan(pg_session, history.InstanceFilter.parse({"starter": "cathy"}).query()
                 .order_by(text("started_at DESC")).limit(50))
    assert "Seq Scan on process_instances" not in plan, plan
