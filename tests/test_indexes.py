"""The inbox and the auditors' search are served by indexes on PostgreSQL (EXPLAIN)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from engine import history, inbox, task_filters, users
from engine.core import WorkflowEngine
from engine.db import ProcessInstance, make_engine


@pytest.fixture
def pg_session(postgres_url):
    engine = make_engine(postgres_url)
    with WorkflowEngine().session_factory(engine)() as session:
        session.execute(text("SET enable_seqscan = off"))  # tiny test tables: ask whether an index *can* serve
        yield session
    engine.dispose()


def _plan(session, query) -> str:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    # the compiler doubles % for the driver's parameter style; this text goes to the server as it is
    return "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {sql.replace('%%', '%')}")))


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


#: one filter per criterion, and the built-in and team filters as the sidebar counts them
FILTERS = [
    task_filters.TaskFilter(),
    task_filters.TaskFilter(process="customer_complaint"),
    task_filters.TaskFilter(step="classify_complaint"),
    task_filters.TaskFilter(role="sales_rep"),
    task_filters.TaskFilter(role=task_filters.MY_ROLES),
    task_filters.TaskFilter(assignee="steve"),
    task_filters.TaskFilter(priority="high"),
    task_filters.TaskFilter(text="east"),
    *(b.criteria for b in task_filters.BUILT_IN),
]


def _filter_queries(session, username: str):
    """Each filter's page query and the sidebar's count statement, their parameters bound."""
    scope = task_filters._Scope(session, users.user_by_name(session, username))
    for criteria in FILTERS:
        tasks, params = task_filters.tasks_query(scope, criteria)
        yield criteria, inbox.page_query(tasks, inbox.PAGE_SIZE).params(params)
    statement, params = task_filters.count_query(scope, FILTERS)
    yield "counts", statement.params(params)


def test_filter_and_count_queries_use_indexes_on_postgresql(pg_session):
    for criteria, query in _filter_queries(pg_session, "sam"):  # sam: his own role and the team he manages
        plan = _plan(pg_session, query)
        assert "Seq Scan on human_tasks" not in plan and "Seq Scan on process_instances" not in plan, (criteria, plan)
        assert "ix_tasks_" in plan or "ix_task_candidates_role" in plan, (criteria, plan)


def test_the_text_search_can_start_from_the_trigram_indexes_on_postgresql(pg_session):
    """A rare word is looked up in the cases' trigram indexes (revision 0016), title and business key both,
    instead of reading every case; the inbox's text filter asks exactly this of a case."""
    pattern = task_filters._like("CMP-77")
    query = select(ProcessInstance.id).where(task_filters._text_condition(0)).params(text_0=pattern)
    plan = _plan(pg_session, query)
    assert "ix_instances_title_trgm" in plan and "ix_instances_business_key_trgm" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_filter_and_count_queries_use_indexes_on_sqlite(sqlite_url):
    """SQLite's planner: every read of ``human_tasks`` and ``process_instances`` is a SEARCH by an index or
    the primary key, never a SCAN of the table."""
    from sqlalchemy.dialects import sqlite

    engine = make_engine(sqlite_url)
    with WorkflowEngine().session_factory(engine)() as session:
        for criteria, query in _filter_queries(session, "sam"):
            sql = query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            scans = [line for line in plan.splitlines()
                     if line.strip().startswith("SCAN") and ("human_tasks" in line or "process_instances" in line)
                     and "USING" not in line]
            assert not scans, (criteria, plan)
            assert "ix_tasks_" in plan or "ix_task_candidates_role" in plan, (criteria, plan)
    engine.dispose()
