"""The KPI dashboard's figures against a data set played through the engine under a controlled clock, with
every expected value computed by hand (see the comments of :func:`seed`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select, update

from engine import actions, case_actions, dashboard, rollups, users
from engine.db import DashboardPeriod, DashboardRollup, HumanTask, ProcessInstance, make_engine
from engine.errors import InvalidForm, NotAllowed

T0 = datetime(2026, 9, 1, 9, 0)  # a Tuesday
NOW = datetime(2026, 11, 2, 9, 0)
RANGE = dashboard.Filters(date(2026, 9, 1), date(2026, 10, 31))

COMPLAINT = {"customer_name": "J. Weber", "customer_contact": "0171 555 0101", "product_name": "Oak chair",
             "problem_type": "quality", "complaint_description": "A leg came loose."}
CLASSIFY = {"severity": "medium", "confirmed_type": "quality"}
RESOLVE = {"root_cause": "Glue batch", "quality_resolution": "Replaced the chair",
           "quality_resolved_date": "2026-09-20"}
CONFIRM = {"customer_resolved": "true", "satisfaction": "satisfied"}
AUDIT = {"dealer_name": "Oakline", "store_name": "Hamburg City", "region": "North", "audit_date": "2026-09-10"}
CHECKLIST = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true",
             "display_ok": "true", "findings": "Fine."}

PLAN = {"plan_year": "2027", "marketing_strategy": "Grow the specialty-store channel.", "sales_target": "12000000",
        "total_budget": "900000", "ad_expense_q1": "200000", "ad_expense_q2": "250000", "ad_expense_q3": "200000",
        "ad_expense_q4": "250000"}
PLAN_STEPS = [("mark", {"mm_review_decision": "approve"}), ("fiona", {"finance_decision": "approve"}),
              ("grace", {"gm_decision": "approve"}), ("sam", {"plan_acknowledged": "true"})]
DRAWINGS = {"customer_name": "Hotel Aurora", "project_name": "Lobby", "drawings_needed_by": "2027-01-31",
            "product_lines": "Chairs", "quantity": "40"}

#: complaint cases: start, then hours until classify, resolve and confirm are completed (each from the last)
COMPLAINTS = [
    ("A", datetime(2026, 9, 1, 9), (2, 4, 4)),    # 10 h
    ("B", datetime(2026, 9, 2, 9), (5, 10, 5)),   # 20 h
    ("C", datetime(2026, 9, 8, 9), (10, 10, 10)),  # 30 h
    ("D", datetime(2026, 9, 15, 9), (30, 5, 5)),  # 40 h; classify (due P1D) done after 30 h: late
    ("E", datetime(2026, 9, 29, 9), (4, 90, 6)),  # 100 h, ends 3 Oct; paula claims the resolve task 5 h before
]


class Player:
    def __init__(self, session, moving):
        self.session, self.clock = session, moving

    def user(self, name: str):
        return users.user_by_name(self.session, name)

    def task(self, instance_id: int) -> int:
        return self.session.scalar(select(HumanTask.id).where(HumanTask.instance_id == instance_id,
                                                              HumanTask.status == "open"))

    def start(self, who: str, key: str, values: dict) -> int:
        instance = actions.start_process(self.session, self.user(who), key, values)
        self.session.commit()
        return instance.id

    def complete(self, who: str, instance_id: int, values: dict, after_hours: float, claim_before: float = 0):
        if claim_before:
            self.clock.advance(hours=after_hours - claim_before)
            actions.claim(self.session, self.user(who), self.task(instance_id))
            self.session.commit()
            self.clock.advance(hours=claim_before)
        else:
            self.clock.advance(hours=after_hours)
        actions.complete_task(self.session, self.user(who), self.task(instance_id), values)
        self.session.commit()


def seed(session, moving) -> None:
    """Five finished complaints (cycle times 10, 20, 30, 40, 100 h), two finished dealer audits (48 h, and
    120 h with a rectification loop), and two open complaints on 2 November (one overdue, one due soon)."""
    p = Player(session, moving)
    for name, started, (classify, resolve, confirm) in COMPLAINTS:
        moving.now = started
        case = p.start("cathy", "customer_complaint", {**COMPLAINT, "title": f"Complaint {name}"})
        p.complete("cathy", case, CLASSIFY, classify)
        p.complete("paula", case, RESOLVE, resolve, claim_before=5 if name == "E" else 0)
        p.complete("cathy", case, CONFIRM, confirm)
    moving.now = datetime(2026, 9, 10, 9)
    compliant = p.start("mark", "dealer_audit", {**AUDIT, "title": "Audit 1"})
    p.complete("amy", compliant, CHECKLIST, 24)
    p.complete("mark", compliant, {"audit_rating": "A", "closing_comment": "Fine."}, 24)
    moving.now = datetime(2026, 9, 10, 9)
    looped = p.start("mark", "dealer_audit", {**AUDIT, "title": "Audit 2"})
    p.complete("amy", looped, {**CHECKLIST, "price_discipline_ok": "false", "findings": "Under list price."}, 24)
    p.complete("dora", looped, {"rectification_deadline": "2026-09-30", "rectification_actions": "Prices fixed."}, 48)
    p.complete("amy", looped, CHECKLIST, 24)
    p.complete("mark", looped, {"audit_rating": "B", "closing_comment": "Fixed."}, 24)
    moving.now = datetime(2026, 9, 3, 9)
    plan = p.start("rita", "marketing_plan_approval", {**PLAN, "title": "Plan 2027"})
    for who, values in PLAN_STEPS:
        p.complete(who, plan, values, 8)
    moving.now = datetime(2026, 10, 5, 9)
    p.start("rita", "marketing_plan_approval", {**PLAN, "title": "Plan 2027, second", "total_budget": "500000"})
    for moment in (datetime(2026, 9, 4, 9), datetime(2026, 10, 6, 9), datetime(2026, 10, 7, 9)):
        moving.now = moment
        p.start("steve", "engineering_drawing_application", {**DRAWINGS, "title": f"Drawings {moment:%d %b}"})
    moving.now = datetime(2026, 11, 1, 6)  # classify is due 2 Nov 06:00: overdue at 09:00
    late = p.start("cathy", "customer_complaint", {**COMPLAINT, "title": "Open, overdue"})
    actions.claim(session, p.user("cathy"), p.task(late))
    session.commit()
    moving.now = datetime(2026, 11, 2, 8)  # due 3 Nov 08:00: within the day
    p.start("cathy", "customer_complaint", {**COMPLAINT, "title": "Open, due soon"})
    moving.now = NOW


@pytest.fixture
def seeded(session, now):
    seed(session, now)
    return session


def by_key(board: dashboard.Dashboard) -> dict[str, dashboard.ProcessFigures]:
    return {p.key: p for p in board.processes}


def test_case_figures(seeded, user):
    board = dashboard.dashboard(seeded, user("grace"), RANGE)
    complaints = by_key(board)["customer_complaint"]
    assert (complaints.started, complaints.finished) == (5, 5)  # the two open ones started in November
    # cycle times 10, 20, 30, 40, 100 h: median 30; p90 at rank 0.9 × 4 = 3.6: 40 + 0.6 × (100 − 40) = 76
    assert (complaints.cycle_median_hours, complaints.cycle_p90_hours) == (30.0, 76.0)
    assert complaints.on_time == 4 and complaints.on_time_rate == pytest.approx(0.8)  # D's classify was late
    assert complaints.reworked == 0 and complaints.rework_rate == 0
    assert complaints.started_per_week == {"2026-08-31": 2, "2026-09-07": 1, "2026-09-14": 1, "2026-09-28": 1}
    assert complaints.finished_per_week == {"2026-08-31": 2, "2026-09-07": 1, "2026-09-14": 1, "2026-09-28": 1}
    audits = by_key(board)["dealer_audit"]
    # 48 h and 120 h: median 84, p90 48 + 0.9 × 72 = 112.8; the re-check loop is rework
    assert (audits.cycle_median_hours, audits.cycle_p90_hours) == (84.0, 112.8)
    assert audits.reworked == 1 and audits.rework_rate == 0.5 and audits.on_time_rate == 1.0
    assert audits.flows == {"Flow_gw_compliant_to_close_audit": 2, "Flow_gw_compliant_to_rectify_findings": 1}


def test_steps_work_in_progress_and_waiting(seeded, user):
    complaints = by_key(dashboard.dashboard(seeded, user("grace"), RANGE))["customer_complaint"]
    classify = complaints.steps["classify_complaint"]
    assert (classify.open, classify.completed) == (2, 5)
    assert classify.median_wait_hours == 5.0  # 2, 4, 5, 10, 30
    resolve = complaints.steps["resolve_quality_problem"]
    assert (resolve.open, resolve.completed, resolve.median_wait_hours) == (0, 5, 10.0)  # 4, 5, 10, 10, 90
    assert complaints.work_in_progress == 2


def test_per_employee_and_month(seeded, user):
    rows = {(e.name, e.month): e for e in dashboard.dashboard(seeded, user("grace"), RANGE).employees}
    cathy = rows[("Cathy Ortiz", "2026-09")]
    # September: classify of A–E (2, 5, 10, 30, 4 h) and confirm of A–D (4, 5, 10, 5 h): median of nine is 5
    assert (cathy.completed, cathy.late, cathy.median_handling_hours) == (9, 1, 5.0)
    october = rows[("Cathy Ortiz", "2026-10")]
    assert (october.completed, october.median_handling_hours) == (1, 6.0)
    # paula: 4, 10, 10, 5 h in September (median 7.5); in October E's task, claimed 5 h before completing it
    assert rows[("Paula Meyer", "2026-09")].median_handling_hours == 7.5
    assert rows[("Paula Meyer", "2026-10")].median_handling_hours == 5.0
    assert rows[("Amy Wu", "2026-09")].completed == 3 and rows[("Dora Becker", "2026-09")].completed == 1


def test_overdue_and_due_soon(seeded, user):
    complaints = dashboard.Filters(RANGE.start, RANGE.end, process="customer_complaint")
    board = dashboard.dashboard(seeded, user("grace"), complaints)
    assert [(r.key, r.overdue, r.due_soon) for r in board.overdue_by_role] == [("customer_service", 1, 1)]
    assert [(r.name, r.overdue, r.due_soon) for r in board.overdue_by_person] == [
        ("Cathy Ortiz", 1, 0), ("Not claimed yet", 0, 1)]


def test_filters_narrow_the_figures(seeded, user):
    october = dashboard.Filters(date(2026, 10, 1), date(2026, 10, 31), process="customer_complaint")
    board = dashboard.dashboard(seeded, user("grace"), october)
    assert [p.key for p in board.processes] == ["customer_complaint"]
    only = board.processes[0]
    assert (only.started, only.finished, only.cycle_median_hours) == (0, 1, 100.0)
    assert board.months == ["2026-10"]
    by_role = dashboard.dashboard(seeded, user("grace"), dashboard.Filters(RANGE.start, RANGE.end, role="production"))
    assert {e.name for e in by_role.employees} == {"Paula Meyer"}
    assert by_role.overdue_by_role == []  # the open tasks are customer service's


def test_scope_follows_the_roles(seeded, user):
    def people(name: str) -> set[str]:
        return {e.name for e in dashboard.dashboard(seeded, user(name), RANGE).employees}

    everyone = {"Cathy Ortiz", "Paula Meyer", "Amy Wu", "Dora Becker", "Mark Chen", "Fiona Walsh", "Grace Lin",
                "Sam Okafor"}
    assert people("alice") == everyone  # the auditor
    assert people("grace") == everyone
    assert people("paula") == {"Paula Meyer"}  # her own only
    assert people("amy") == {"Amy Wu", "Dora Becker"}  # she manages the dealers
    amy = dashboard.dashboard(seeded, user("amy"), RANGE)
    # the processes her role owns (staff training arrived with issue 20)
    assert [p.key for p in amy.processes] == ["dealer_audit", "staff_training"]
    assert dashboard.dashboard(seeded, user("paula"), RANGE).processes == []
    with pytest.raises(NotAllowed):
        dashboard.diagram_xml(seeded, user("paula"), "customer_complaint")
    assert 'id="inspect_dealer"' in dashboard.diagram_xml(seeded, user("amy"), "dealer_audit")


def test_figures_from_form_data(seeded, user):
    board = dashboard.dashboard(seeded, user("grace"), RANGE)
    forms = board.forms
    assert forms.drawings == {("2026-09", "running"): 1, ("2026-10", "running"): 2}
    # two first inspections in the North; the second found the prices under the list
    assert forms.compliance == {"North": (2, {"decoration_ok": 2, "price_discipline_ok": 1,
                                              "no_cross_region_selling": 2, "display_ok": 2})}
    assert forms.complaints == {"quality": (5, 30.0)}
    assert forms.budgets == {"2027": (2, 1400000.0, 1, 900000.0)}  # the second plan waits for its review
    tables = dashboard.tables(board)
    assert tables["compliance"].rows == [["North", 2, 100.0, 50.0, 100.0, 100.0]]
    assert tables["drawings"].rows == [["2026-09", 1, 1], ["2026-10", 2, 2]]


def test_percentiles_match_hand_computed_values():
    runs = rollups.Group([0], [np.array([15.0, 3.0]), [7.0, 1.0]])  # two pieces' values
    # sorted 1, 3, 7, 15: rank 0.75 → 1 + 0.75 × 2 = 2.5; rank 1.5 → 5; rank 2.7 → 7 + 0.7 × 8 = 12.6
    found = runs.percentiles(0.0, 0.25, 0.5, 0.9, 1.0)
    assert found == pytest.approx([1.0, 2.5, 5.0, 12.6, 15.0])
    assert rollups.percentiles([4.0], 0.9) == [4.0]
    assert rollups.percentiles([2.0, 10.0], 0.5, 0.9) == pytest.approx([6.0, 9.2])  # 2 + 0.9 × 8
    assert rollups.percentiles([], 0.5) == [None] and rollups.Group([0]).percentiles(0.5) == [None]


def test_bad_filters_are_refused_with_reasons():
    with pytest.raises(InvalidForm) as exc:
        dashboard.parse_filters({"start": "2026-13-01"})
    assert "start" in exc.value.errors
    with pytest.raises(InvalidForm) as exc:
        dashboard.parse_filters({"start": "2026-10-02", "end": "2026-10-01"})
    assert "end" in exc.value.errors
    with pytest.raises(InvalidForm):
        dashboard.parse_filters({"start": "2020-01-01", "end": "2026-10-01"})
    assert dashboard.parse_filters({}, today=date(2026, 11, 2)).start == date(2026, 11, 2) - timedelta(days=90)


# --- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def seeded_app(app, sqlite_url, workflow_engine, now):
    engine = make_engine(sqlite_url)
    with workflow_engine.session_factory(engine)() as session:
        seed(session, now)
    engine.dispose()
    return app


QUERY = "start=2026-09-01&end=2026-10-31"


def test_page_permissions_over_http(seeded_app, login_as):
    paula = login_as("paula")
    page = paula.get(f"/dashboard?{QUERY}").get_data(as_text=True)
    assert "Paula Meyer" in page and "Cathy Ortiz" not in page and 'id="cases"' not in page
    assert 'href="/dashboard"' not in paula.get("/").get_data(as_text=True).split("whoami")[0]  # not in her menu
    assert paula.get("/dashboard/diagram/customer_complaint.bpmn").status_code == 403

    amy = login_as("amy").get(f"/dashboard?{QUERY}").get_data(as_text=True)
    assert "Dora Becker" in amy and "Paula Meyer" not in amy and "Dealer / store audit" in amy

    alice = login_as("alice")
    page = alice.get(f"/dashboard?{QUERY}").get_data(as_text=True)
    assert all(name in page for name in ("Paula Meyer", "Cathy Ortiz", "Dora Becker"))
    assert 'id="cases"' in page and 'data-chart="cycle"' in page and 'id="bottleneck-diagram"' in page
    assert alice.get("/dashboard/diagram/customer_complaint.bpmn").status_code == 200


def test_csv_download_of_a_figure(seeded_app, login_as):
    response = login_as("grace").get(f"/dashboard/cases.csv?{QUERY}&process=customer_complaint")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["Process", "Started", "Finished", "Median cycle time (h)"]
    assert rows[1] == ["Customer complaint", "5", "5", "30.0", "76.0", "0.0", "80.0", "2"]
    assert login_as("grace").get(f"/dashboard/nothing.csv?{QUERY}").status_code == 404
    assert login_as("grace").get("/dashboard/cases.csv?start=yesterday").status_code == 400


def test_csv_cells_that_look_like_formulas_are_neutralised():
    table = dashboard.Table("t", "T", ["Name", "n"], [["=HYPERLINK(\"x\")", 1], ["-1+2", None]])
    rows = list(csv.reader(io.StringIO(dashboard.to_csv(table))))
    assert rows[1] == ["'=HYPERLINK(\"x\")", "1"] and rows[2] == ["'-1+2", ""]


def test_bad_dates_on_the_page_say_why(seeded_app, login_as):
    response = login_as("grace").get("/dashboard?start=2026-02-30")
    assert response.status_code == 422 and "Give the date as YYYY-MM-DD." in response.get_data(as_text=True)


def test_a_csv_computes_only_its_figure_and_the_same_numbers(seeded, user):
    full = dashboard.tables(dashboard.dashboard(seeded, user("grace"), RANGE))
    assert set(dashboard.TABLE_PARTS) == set(full)
    for name, parts in dashboard.TABLE_PARTS.items():
        alone = dashboard.tables(dashboard.dashboard(seeded, user("grace"), RANGE, parts))[name]
        assert alone.rows == full[name].rows, name


def test_an_upgrade_fills_the_case_summaries_with_the_same_figures(seeded, user, database_url):
    """A database whose cases finished before revision 0013 (its summaries are gone with the downgrade), and whose
    tasks and decisions were written before 0015 (without their case's process), reads the same figures after the
    upgrade, whose backfills compute what the engine wrote when each case ended and copy each case's process."""
    from alembic import command
    from sqlalchemy import func

    from engine import schema
    from engine.db import CaseSummary

    def figures() -> dict:
        board = dashboard.dashboard(seeded, user("grace"), RANGE)
        return {name: table.rows for name, table in dashboard.tables(board).items()}

    before = figures()
    board = by_key(dashboard.dashboard(seeded, user("grace"), RANGE))
    assert board["dealer_audit"].reworked == 1 and board["customer_complaint"].on_time == 4  # both flags occur
    written = seeded.scalar(select(func.count()).select_from(CaseSummary))
    seeded.commit()
    seeded.close()
    command.downgrade(schema.alembic_config(database_url), "0012")
    command.upgrade(schema.alembic_config(database_url), "head")
    assert seeded.scalar(select(func.count()).select_from(CaseSummary)) == written > 0
    assert seeded.scalar(select(func.count()).where(HumanTask.process_key.is_(None))) == 0
    assert figures() == before


def test_only_the_step_that_ends_a_case_writes_its_summary(session, now):
    """The engine's completion pays one statement for the dashboard, and only when it ends the case."""
    from sqlalchemy import event as sa_event

    from engine.db import CaseSummary

    p = Player(session, now)
    case = p.start("cathy", "customer_complaint", {**COMPLAINT, "title": "Counted"})
    statements: list[list[str]] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:
        statements[-1].append(statement)

    bind = session.get_bind()
    sa_event.listen(bind, "before_cursor_execute", count)
    try:
        for who, values in (("cathy", CLASSIFY), ("paula", RESOLVE), ("cathy", CONFIRM)):
            statements.append([])
            p.complete(who, case, values, 2)
    finally:
        sa_event.remove(bind, "before_cursor_execute", count)
    summaries = [[s for s in step if "case_summaries" in s] for step in statements]
    assert [len(s) for s in summaries] == [0, 0, 1] and summaries[2][0].lstrip().upper().startswith("INSERT")
    summary = session.get(CaseSummary, case)
    assert (summary.cycle_seconds, summary.reworked, summary.late) == (6 * 3600.0, False, False)
    # the task rows and the events carry the case's process, written by the statements that insert them
    from engine.db import Event

    assert set(session.scalars(select(HumanTask.process_key).where(HumanTask.instance_id == case))) == {
        "customer_complaint"}
    assert set(session.scalars(select(Event.process_key).where(Event.instance_id == case))) == {"customer_complaint"}


# --- sealed days and months (engine.rollups) ---------------------------------------------------------------------

RANGES = [RANGE, dashboard.Filters(date(2026, 9, 2), date(2026, 10, 15)),
          dashboard.Filters(date(2026, 8, 20), date(2026, 11, 2)),
          dashboard.Filters(date(2026, 9, 30), date(2026, 11, 2), process="dealer_audit"),
          dashboard.Filters(date(2026, 9, 1), date(2026, 11, 1), role="production")]


def test_a_range_is_split_into_months_and_days_that_are_over():
    # 1 November is over at 00:30 on the 2nd, but not by an hour: it and what follows are read from their items
    sealable, rest = rollups.pieces(date(2026, 8, 30), date(2026, 11, 3), datetime(2026, 11, 2, 0, 30))
    assert sealable == [("day", date(2026, 8, 30)), ("day", date(2026, 8, 31)), ("month", date(2026, 9, 1)),
                        ("month", date(2026, 10, 1))]
    assert rest == date(2026, 11, 1)
    # a month not over yet is sealed day by day; a month cut by the range too
    sealable, rest = rollups.pieces(date(2026, 10, 1), date(2026, 11, 1), datetime(2026, 10, 3, 1, 0))
    assert sealable == [("day", date(2026, 10, 1)), ("day", date(2026, 10, 2))] and rest == date(2026, 10, 3)
    sealable, rest = rollups.pieces(date(2026, 9, 1), date(2026, 9, 15), datetime(2026, 11, 2))
    assert [kind for kind, _ in sealable] == ["day"] * 14 and rest == date(2026, 9, 15)


def test_sealed_days_and_months_give_the_figures_their_items_give(seeded, user, monkeypatch):
    grace = user("grace")

    def figures() -> list[dict[str, list]]:
        boards = [dashboard.dashboard(seeded, grace, filters) for filters in RANGES]
        return [{name: table.rows for name, table in dashboard.tables(board).items()} for board in boards]

    with monkeypatch.context() as patched:
        patched.setattr(rollups, "SETTLE", timedelta(days=3650))  # nothing is over: every figure from its items
        from_items = figures()
    assert seeded.scalar(select(func.count()).select_from(DashboardPeriod)) == 0
    sealing, sealed = figures(), figures()  # the first requests seal, the next read the sealed rows
    assert sealing == from_items and sealed == from_items
    marks = {tuple(row) for row in seeded.execute(select(DashboardPeriod.figure, DashboardPeriod.kind))}
    assert {("waits", "month"), ("waits", "day"), ("handling", "month"), ("cycle", "day")} <= marks
    assert from_items[0]["cases"] and from_items[0]["employees"] and from_items[0]["compliance"]


def test_a_later_request_reads_a_sealed_month_from_its_rows(seeded, user):
    grace = user("grace")
    dashboard.dashboard(seeded, grace, RANGE)
    r = DashboardRollup
    seeded.execute(update(r).where(r.figure == "started", r.kind == "month", r.start == date(2026, 9, 1),
                                   r.key == json.dumps(["customer_complaint", "2026-08-31"])).values(counts="[7]"))
    complaints = by_key(dashboard.dashboard(seeded, grace, RANGE))["customer_complaint"]
    assert complaints.started == 5 + 5 and complaints.started_per_week["2026-08-31"] == 7


def test_a_piece_with_a_running_case_is_read_from_its_items_until_the_case_ends(seeded, user):
    grace = user("grace")
    assert dashboard.dashboard(seeded, grace, RANGE).forms.drawings == {("2026-09", "running"): 1,
                                                                        ("2026-10", "running"): 2}
    p = DashboardPeriod
    september = select(p.figure).where(p.kind == "month", p.start == date(2026, 9, 1))
    sealed = set(seeded.scalars(september))
    assert {"started", "handling"} <= sealed and "drawings" not in sealed
    first = seeded.scalar(select(ProcessInstance.id).where(ProcessInstance.title == "Drawings 04 Sep"))
    case_actions.cancel(seeded, user("steve"), first, "The hotel chose another supplier.")
    seeded.commit()
    assert dashboard.dashboard(seeded, grace, RANGE).forms.drawings == {("2026-09", "cancelled"): 1,
                                                                        ("2026-10", "running"): 2}
    assert "drawings" in set(seeded.scalars(september))  # its only case has ended: sealed now


def test_the_worker_seals_the_default_range_so_that_pages_do_not(seeded, user, database_url):
    from engine.core import WorkflowEngine
    from engine.worker import Worker

    sessions = WorkflowEngine().session_factory(make_engine(database_url))
    worker = Worker(sessions)
    sealed = worker.seal_dashboard()
    # 91 days to 2 November: the days 4–31 August, September, October and 1 November (2 November is not over), for
    # each figure, but the drawings of September and October and the budgets of October: a case started then runs;
    # then 400 days: 29 and 30 September 2025, the months October 2025 to August 2026 (the rest sealed already)
    assert sealed == (28 + 2 + 1) * len(dashboard.FIGURES) - 3 + (2 + 11) * len(dashboard.FIGURES)
    assert worker.seal_dashboard() == 0
    default = dashboard.parse_filters({}, NOW.date())
    before = seeded.scalar(select(func.count()).select_from(DashboardPeriod))
    board = dashboard.dashboard(seeded, user("grace"), default)
    assert seeded.scalar(select(func.count()).select_from(DashboardPeriod)) == before  # nothing left to seal
    assert by_key(board)["customer_complaint"].finished == 5
    a_year = dashboard.Filters(date(2025, 11, 1), date(2026, 10, 31))
    assert by_key(dashboard.dashboard(seeded, user("grace"), a_year))["customer_complaint"].finished == 5
    assert seeded.scalar(select(func.count()).select_from(DashboardPeriod)) == before


def test_a_database_that_refuses_the_seal_still_answers_and_seals_later(seeded, user):
    grace = user("grace")
    seeded.commit()
    sqlite = seeded.get_bind().dialect.name == "sqlite"
    seeded.connection().exec_driver_sql("PRAGMA query_only = ON" if sqlite else "SET TRANSACTION READ ONLY")
    refused = dashboard.tables(dashboard.dashboard(seeded, grace, RANGE))
    if sqlite:  # the pragma stays with the connection, which the pool hands out again
        seeded.connection().exec_driver_sql("PRAGMA query_only = OFF")
    assert seeded.scalar(select(func.count()).select_from(DashboardPeriod)) == 0
    sealed = dashboard.tables(dashboard.dashboard(seeded, grace, RANGE))
    assert seeded.scalar(select(func.count()).select_from(DashboardPeriod)) > 0
    assert {name: t.rows for name, t in refused.items()} == {name: t.rows for name, t in sealed.items()}
    assert [row[:3] for row in sealed["cases"].rows if row[2]]  # finished cases were counted
