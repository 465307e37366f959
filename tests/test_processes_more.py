"""The department's other processes (issue 20), each driven end to end over HTTP by the demo users of the
right roles along each decision path; the ones started by a timer start once per period under a
controlled clock, and their deadlines fire as the clock moves."""

from __future__ import annotations

import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_processes_http import Case

from engine.db import Attachment, HumanTask, Notification, ProcessInstance, ProcessSchedule, User, make_engine
from engine.worker import fire_due_timers, start_scheduled_processes

T0 = datetime(2026, 11, 26, 9, 0)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def files_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "attachments"
    monkeypatch.setenv("DEPTFLOW_ATTACHMENTS_DIR", str(directory))
    return directory


@pytest.fixture
def db(sqlite_url: str, workflow_engine):
    """Sessions on the database the ``app`` fixture serves (the scheduler and the timers run on it)."""
    engine = make_engine(sqlite_url)
    yield workflow_engine.session_factory(engine)
    engine.dispose()


class Scheduled(Case):
    """A case the scheduler started (a timer start event): nobody posts its start form."""

    def __init__(self, app, instance_id: int):
        self.app, self.clients, self.instance_id = app, {}, instance_id


def start_period(app, db, now, process_key: str) -> tuple[Scheduled, datetime]:
    """Move the clock just past the process's next scheduled start and let the scheduler start it."""
    with db() as session:
        due = session.get(ProcessSchedule, process_key).next_start_at
    now.now = due + timedelta(seconds=1)
    before = cases_of(db, process_key)
    start_scheduled_processes(db)  # other processes due by now start too
    assert cases_of(db, process_key) == before + 1
    with db() as session:
        case_id = session.scalars(select(ProcessInstance.id).where(ProcessInstance.process_key == process_key)
                                  .order_by(ProcessInstance.id.desc())).first()
    return Scheduled(app, case_id), due


def cases_of(db, process_key: str) -> int:
    with db() as session:
        return len(session.scalars(select(ProcessInstance.id).where(ProcessInstance.process_key == process_key))
                   .all())


def open_tasks(db, case: Case) -> list[str]:
    with db() as session:
        return sorted(session.scalars(select(HumanTask.element_id).where(
            HumanTask.instance_id == case.instance_id, HumanTask.status == "open")))


# --- weekly sales diary ------------------------------------------------------------------

DIARY = {"diary_week": "2026-W49", "sales_region": "East", "visits_count": "9",
         "visits": "Casa Moebel Leipzig: new display\nHotel Elbe: lobby chairs", "orders_count": "3",
         "orders_value": "18450.50", "issues": "Competitor cut prices on oak tables by 10 %"}


@pytest.mark.parametrize("process_key", ["sales_diary", "market_feedback", "performance_review"])
def test_timer_starts_one_case_per_period(app, db, now, process_key):
    before = cases_of(db, process_key)
    _, due = start_period(app, db, now, process_key)
    start_scheduled_processes(db)
    now.advance(hours=1)
    start_scheduled_processes(db)
    assert cases_of(db, process_key) == before + 1, "the same period never starts twice"
    with db() as session:
        following = session.get(ProcessSchedule, process_key).next_start_at
    assert following > due
    now.now = following + timedelta(seconds=1)
    start_scheduled_processes(db)
    assert cases_of(db, process_key) == before + 2


def test_sales_diary_week_runs_on_mondays(app, db, now):
    case, due = start_period(app, db, now, "sales_diary")
    assert (due.weekday(), due.hour) == (0, 8), "Monday 08:00 UTC"
    with db() as session:
        following = session.get(ProcessSchedule, "sales_diary").next_start_at
    assert following - due == timedelta(weeks=1)


def task_holders(db, case: Case) -> dict[str, list[str | None]]:
    """The case's open tasks: element id → the usernames they are assigned to (None: to a role)."""
    with db() as session:
        rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == case.instance_id,
                                                       HumanTask.status == "open")).all()
        found: dict[str, list[str | None]] = {}
        for row in rows:
            assignee = session.get(User, row.assignee_id).username if row.assignee_id else None
            found.setdefault(row.element_id, []).append(assignee)
    return {element: sorted(names, key=str) for element, names in found.items()}


def test_every_representative_gets_their_own_diary_task(app, db, now):
    """The case lists the sales representatives active at its start: one diary task each, assigned to them."""
    from engine import people, users

    with db() as session:  # a third representative joins; one who left the role gets no diary
        rita = users.user_by_name(session, "rita")
        people.update_access(session, None, rita.id, ["research_planning", "sales_rep"], True)
        session.commit()
    case, _ = start_period(app, db, now, "sales_diary")
    assert task_holders(db, case) == {"file_sales_diary": ["rita", "sara", "steve"]}
    steve_task, sara_task = case.tasks_of("steve")["file_sales_diary"], case.tasks_of("sara")["file_sales_diary"]
    assert steve_task != sara_task
    with db() as session:
        names = session.scalars(select(HumanTask.name).where(HumanTask.instance_id == case.instance_id)).all()
    assert sorted(names) == [f"File the week's sales diary: {rep}" for rep in ("rita", "sara", "steve")]
    refused = case.client("sara").post(f"/tasks/{steve_task}/complete", data=DIARY)
    assert refused.status_code in (403, 409), "Sara cannot file Steve's diary"
    case.step("sara", "file_sales_diary", DIARY, not_for="clara")
    assert task_holders(db, case) == {"file_sales_diary": ["rita", "steve"], "register_sales_diary": [None]}
    assert case.tasks_of("steve")["file_sales_diary"] == steve_task, "Steve's diary is still his to file"


def test_sales_diary_with_photo_sent_back_to_its_representative_and_filed(app, db, now):
    case, _ = start_period(app, db, now, "sales_diary")
    photo = (io.BytesIO(PNG), "display.png")
    case.step("steve", "file_sales_diary", {**DIARY, "diary_photos": photo}, not_for="clara")
    case.step("clara", "register_sales_diary", {"diary_registration_number": "SD-2026-0142",
                                                "clerk_comment": "Which hotel contact?"}, not_for="steve")
    assert task_holders(db, case) == {"file_sales_diary": ["sara", "steve"]}, "sent back to Steve, not to Sara"
    assert case.tasks_of("sara")["file_sales_diary"] != case.tasks_of("steve")["file_sales_diary"]
    case.step("steve", "file_sales_diary", {**DIARY, "visits": "Hotel Elbe: Mr Braun, lobby chairs"},
              not_for="sam")
    case.step("clara", "register_sales_diary", {"diary_registration_number": "SD-2026-0142",
                                                "diary_complete": "true"}, not_for="sam")
    assert task_holders(db, case) == {"file_sales_diary": ["sara"]}
    assert case.status("steve") == "running", "Sara's diary is still missing"
    case.step("sara", "file_sales_diary", {**DIARY, "sales_region": "South"}, not_for="steve")
    case.step("clara", "register_sales_diary", {"diary_registration_number": "SD-2026-0143",
                                                "diary_complete": "true"}, not_for="sara")
    assert case.status("steve") == "completed"
    with db() as session:
        files = session.scalars(select(Attachment).where(Attachment.instance_id == case.instance_id)).all()
    assert [f.filename for f in files] == ["display.png"]


def test_sales_diary_refuses_a_bad_week_and_keeps_the_values(app, db, now):
    case, _ = start_period(app, db, now, "sales_diary")
    client = case.client("steve")
    task_id = case.tasks_of("steve")["file_sales_diary"]
    response = client.post(f"/tasks/{task_id}/complete", data={**DIARY, "diary_week": "week 49",
                                                               "visits_count": "-1"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'data-field="diary_week"' in page and 'data-field="visits_count"' in page
    assert case.tasks_of("steve")["file_sales_diary"] == task_id


@pytest.mark.parametrize("decision", ["refile", "excuse"])
def test_missing_sales_diary_is_reminded_then_escalated_for_that_representative(app, db, now, decision):
    case, due = start_period(app, db, now, "sales_diary")
    case.step("sara", "file_sales_diary", DIARY, not_for="clara")  # Sara files on time, Steve does not
    now.now = due + timedelta(days=4, hours=9, minutes=1)  # Friday 17:01: the reminder
    fire_due_timers(db)
    assert task_holders(db, case) == {"file_sales_diary": ["steve"], "register_sales_diary": [None]}
    with db() as session:
        reminded = session.scalars(select(Notification).join(HumanTask, Notification.task_id == HumanTask.id)
                                   .where(Notification.kind == "escalated",
                                          HumanTask.element_id == "file_sales_diary",
                                          Notification.created_at > due + timedelta(days=1))).all()
        assert {n.user.username for n in reminded} == {"steve"}, "only the representative whose diary is missing"
    now.now = due + timedelta(days=6, hours=16, minutes=1)  # Sunday 24:00: escalated to the sales manager
    fire_due_timers(db)
    assert task_holders(db, case) == {"follow_up_missing_diary": [None], "register_sales_diary": [None]}
    with db() as session:
        follow_up = session.scalar(select(HumanTask.name).where(HumanTask.element_id == "follow_up_missing_diary"))
    assert follow_up == "Follow up the missing sales diary: steve", "the sales manager sees whose diary is missing"
    assert "file_sales_diary" not in case.tasks_of("steve")
    case.step("clara", "register_sales_diary", {"diary_registration_number": "SD-2026-0149",
                                                "diary_complete": "true"}, not_for="sam")
    case.step("sam", "follow_up_missing_diary", {"follow_up_decision": decision,
                                                 "follow_up_note": "Steve was at the trade fair"}, not_for="steve")
    if decision == "refile":
        assert task_holders(db, case) == {"file_sales_diary": ["steve"]}, "Steve files it, not Sara"
        assert "file_sales_diary" not in case.tasks_of("sara")
        case.step("steve", "file_sales_diary", DIARY, not_for="sam")
        case.step("clara", "register_sales_diary", {"diary_registration_number": "SD-2026-0150",
                                                    "diary_complete": "true"}, not_for="steve")
    assert case.status("sam") == "completed"


# --- bid suggestion --------------------------------------------------------------------------

BID = {"title": "Bid: Lindau library", "customer_name": "City of Lindau", "project_name": "Library reading rooms",
       "bid_type": "tender", "bid_deadline": "2027-01-20", "estimated_value": "380000",
       "product_lines": "Bergen chairs, Oslo tables"}
SUGGESTION = {"suggested_price": "352000", "suggested_products": "120 chairs, 30 tables",
              "competitors": "Nordform bids low", "win_chance": "60"}


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_bid_suggestion_reworked_then_bid(app, outcome):
    case = Case(app, "sara", "bid_suggestion", {**BID, "tender_documents": (io.BytesIO(b"%PDF-1.7\n%%EOF\n"),
                                                                            "tender.pdf")})
    case.step("rita", "prepare_bid_suggestion", SUGGESTION, not_for="mark")
    case.step("mark", "decide_bid", {"bid_decision": "rework", "decision_comment": "Check Nordform's last bids"},
              not_for="rita")
    case.step("rita", "prepare_bid_suggestion", {**SUGGESTION, "win_chance": "55"}, not_for="sara")
    case.step("mark", "decide_bid", {"bid_decision": "bid", "approved_price": "345000"}, not_for="sara")
    assert "record_bid_outcome" not in case.tasks_of("steve"), "the outcome is the reporting representative's"
    case.step("sara", "record_bid_outcome", {"bid_outcome": outcome, "contract_value": "345000"}, not_for="mark")
    assert case.status("sara") == "completed"


def test_bid_suggestion_no_bid(app):
    case = Case(app, "steve", "bid_suggestion", {**BID, "bid_type": "consultation"})
    case.step("rita", "prepare_bid_suggestion", {**SUGGESTION, "win_chance": "10"}, not_for="steve")
    case.step("mark", "decide_bid", {"bid_decision": "no_bid", "decision_comment": "Not our segment"},
              not_for="rita")
    assert case.status("steve") == "completed"
    assert "record_bid_outcome" not in case.tasks_of("steve")


def test_bid_suggestion_refuses_a_chance_over_100(app):
    case = Case(app, "steve", "bid_suggestion", BID)
    task_id = case.tasks_of("rita")["prepare_bid_suggestion"]
    response = case.client("rita").post(f"/tasks/{task_id}/complete", data={**SUGGESTION, "win_chance": "140"})
    assert response.status_code == 422 and 'data-field="win_chance"' in response.get_data(as_text=True)


# --- advertising campaign approval ---------------------------------------------------------

CAMPAIGN = {"campaign_type": "advertising", "agency": "Blau & Partner", "media": "Regional radio, outdoor",
            "campaign_goal": "Bring families to the spring sofa week", "goal_target": "600 leads",
            "campaign_budget": "40000", "campaign_start": "2027-03-01", "campaign_end": "2027-03-21"}
RESULT = {"actual_spend": "38200", "result_achieved": "710 leads", "goal_met": "exceeded"}


def test_campaign_within_the_plan_reworked_run_and_measured(app, db, now):
    case = Case(app, "rita", "ad_campaign_approval", {
        "title": "Campaign: spring sofa week", **CAMPAIGN,
        "campaign_brief": (io.BytesIO(b"%PDF-1.7\n%%EOF\n"), "brief.pdf")})
    case.step("mark", "approve_campaign_mm", {"mm_decision": "rework", "ad_plan_remaining": "100000",
                                              "mm_comment": "Add online"}, not_for="rita")
    case.step("rita", "revise_campaign", {**CAMPAIGN, "media": "Radio, outdoor, online",
                                          "revision_notes": "Online added"}, not_for="mark")
    case.step("mark", "approve_campaign_mm", {"mm_decision": "approve", "ad_plan_remaining": "100000"},
              not_for="grace")
    assert "approve_campaign_gm" not in case.tasks_of("grace"), "within the plan: no general manager"
    case.step("fiona", "confirm_campaign_finance", {"finance_confirmed": "true", "budget_code": "AD-2027"},
              not_for="mark")
    assert open_tasks(db, case) == [], "waiting for the campaign to end"
    now.now = datetime(2027, 3, 21, 0, 1)
    fire_due_timers(db)
    case.step("rita", "record_campaign_result", RESULT, not_for="mark")
    assert case.status("rita") == "completed"


def test_campaign_above_the_plan_needs_the_general_manager(app, db, now):
    case = Case(app, "rita", "ad_campaign_approval", {"title": "Campaign: trade fair", **CAMPAIGN,
                                                      "campaign_budget": "150000"})
    case.step("mark", "approve_campaign_mm", {"mm_decision": "approve", "ad_plan_remaining": "100000"},
              not_for="fiona")
    assert "confirm_campaign_finance" not in case.tasks_of("fiona")
    now.advance(days=3, minutes=1)
    fire_due_timers(db)
    with db() as session:
        reminded = session.scalars(select(Notification.kind).join(HumanTask, Notification.task_id == HumanTask.id)
                                   .where(HumanTask.element_id == "approve_campaign_gm")).all()
    assert "escalated" in reminded, "the general manager is reminded after 3 days"
    case.step("grace", "approve_campaign_gm", {"gm_decision": "approve"}, not_for="mark")
    case.step("fiona", "confirm_campaign_finance", {"finance_confirmed": "false",
                                                    "finance_comment": "Not in this year's budget"}, not_for="grace")
    assert case.status("rita") == "completed", "not funded"


@pytest.mark.parametrize("who", ["mark", "grace"])
def test_campaign_rejected(app, who):
    case = Case(app, "rita", "ad_campaign_approval", {"title": "Campaign: TV", **CAMPAIGN,
                                                      "campaign_budget": "900000"})
    decision = "reject" if who == "mark" else "approve"
    case.step("mark", "approve_campaign_mm", {"mm_decision": decision, "ad_plan_remaining": "100000"},
              not_for="rita")
    if who == "grace":
        case.step("grace", "approve_campaign_gm", {"gm_decision": "reject", "gm_comment": "Too expensive"},
                  not_for="fiona")
    assert case.status("rita") == "completed"
    assert "confirm_campaign_finance" not in case.tasks_of("fiona")


def test_campaign_budget_code_must_match_its_pattern(app):
    case = Case(app, "rita", "ad_campaign_approval", {"title": "Campaign: catalogue", **CAMPAIGN})
    case.step("mark", "approve_campaign_mm", {"mm_decision": "approve", "ad_plan_remaining": "100000"},
              not_for="rita")
    task_id = case.tasks_of("fiona")["confirm_campaign_finance"]
    response = case.client("fiona").post(f"/tasks/{task_id}/complete", data={"finance_confirmed": "true",
                                                                             "budget_code": "ad2027"})
    assert response.status_code == 422 and 'data-field="budget_code"' in response.get_data(as_text=True)


# --- customer satisfaction survey ----------------------------------------------------------

SURVEY = {"title": "Satisfaction survey 2026-Q4", "survey_period": "2026-Q4", "survey_method": "phone",
          "sample_size": "60", "satisfaction_threshold": "4"}


def test_survey_below_threshold_measures_chased_when_late_and_more_asked(app, db, now):
    case = Case(app, "cathy", "customer_satisfaction_survey", SURVEY)
    case.step("cathy", "record_survey_results", {"responses": "48", "average_score": "3.2",
                                                 "main_problems": "Late deliveries",
                                                 "survey_results": (io.BytesIO(b"Score;N\n3;20\n"), "scores.csv")},
              not_for="mark")
    case.step("cathy", "plan_corrective_measures", {"measure_description": "Two-hour delivery windows",
                                                    "measure_owner": "sales", "measure_deadline": "2026-12-10"},
              not_for="sam")
    assert "carry_out_measure_sales" in case.tasks_of("sam")
    now.now = datetime(2026, 12, 10, 0, 1)  # the measure's deadline passed
    fire_due_timers(db)
    assert open_tasks(db, case) == ["carry_out_measure_sales", "chase_late_measure"]
    case.step("mark", "chase_late_measure", {"chase_note": "Sam promises next Friday"}, not_for="sam")
    case.step("sam", "carry_out_measure_sales", {"measure_actions": "Windows live", "measure_done_date": "2026-12-14"},
              not_for="paula")
    case.step("mark", "review_survey", {"review_decision": "more_measures", "review_comment": "Assembly too"},
              not_for="cathy")
    case.step("cathy", "plan_corrective_measures", {"measure_description": "New assembly leaflet",
                                                    "measure_owner": "production", "measure_deadline": "2027-01-15"},
              not_for="paula")
    case.step("paula", "carry_out_measure_production", {"measure_actions": "Leaflet printed",
                                                        "measure_done_date": "2027-01-10"}, not_for="sam")
    case.step("mark", "review_survey", {"review_decision": "close"}, not_for="paula")
    assert case.status("cathy") == "completed"


def test_survey_above_threshold_goes_straight_to_review(app):
    case = Case(app, "cathy", "customer_satisfaction_survey", SURVEY)
    case.step("cathy", "record_survey_results", {"responses": "51", "average_score": "4.3"}, not_for="mark")
    assert "plan_corrective_measures" not in case.tasks_of("cathy")
    case.step("mark", "review_survey", {"review_decision": "close"}, not_for="cathy")
    assert case.status("cathy") == "completed"


def test_survey_refuses_a_score_out_of_range(app):
    case = Case(app, "cathy", "customer_satisfaction_survey", SURVEY)
    task_id = case.tasks_of("cathy")["record_survey_results"]
    response = case.client("cathy").post(f"/tasks/{task_id}/complete", data={"responses": "5",
                                                                             "average_score": "7"})
    assert response.status_code == 422 and 'data-field="average_score"' in response.get_data(as_text=True)


# --- monthly market feedback ---------------------------------------------------------------

FEEDBACK = {"feedback_month": "2026-11", "sales_region": "East", "store_coverage": "42",
            "channel_development": "Two new stores in Dresden", "sell_through_display": "Oslo sofas: six weeks",
            "competitor_moves": "Nordform cut table prices"}
FOLLOWED_UP = {"follow_up_actions": "Price answer sent to dealers", "follow_up_done_date": "2026-12-12"}


@pytest.mark.parametrize(("action", "who", "task"), [("sales", "sam", "follow_up_sales"),
                                                      ("marketing", "mark", "follow_up_marketing"),
                                                      ("none", None, None)])
def test_market_feedback_month(app, db, now, action, who, task):
    """Each representative reports their own region; a report sent back goes to the one who owes it; the sales
    manager sums up the region once every report is in."""
    case, due = start_period(app, db, now, "market_feedback")
    assert (due.day, due.hour) == (1, 9), "the first of the month at 09:00 UTC"
    assert task_holders(db, case) == {"report_market_feedback": ["sara", "steve"]}, "one report per representative"
    steve_task = case.tasks_of("steve")["report_market_feedback"]
    assert case.client("sara").post(f"/tasks/{steve_task}/complete", data=FEEDBACK).status_code in (403, 409), \
        "Sara cannot file Steve's report"
    case.step("sara", "report_market_feedback", {**FEEDBACK, "feedback_photos": (io.BytesIO(PNG), "store.png")},
              not_for="sam")
    assert task_holders(db, case) == {"report_market_feedback": ["steve"], "check_market_feedback": [None]}
    case.step("sam", "check_market_feedback", {"feedback_complete": "false", "check_comment": "Plan execution?"},
              not_for="sara")
    assert task_holders(db, case) == {"report_market_feedback": ["sara", "steve"]}, "sent back to Sara, who filed it"
    assert case.tasks_of("steve")["report_market_feedback"] == steve_task, "Steve's report is still his to file"
    case.step("sara", "report_market_feedback", {**FEEDBACK, "plan_execution": "Spring promotion on time"},
              not_for="sam")
    case.step("sam", "check_market_feedback", {"feedback_complete": "true"}, not_for="sara")
    assert task_holders(db, case) == {"report_market_feedback": ["steve"]}, "the region waits for Steve's report"
    case.step("steve", "report_market_feedback", {**FEEDBACK, "sales_region": "North"}, not_for="sam")
    case.step("sam", "check_market_feedback", {"feedback_complete": "true"}, not_for="steve")
    with db() as session:
        names = session.scalars(select(HumanTask.name).where(HumanTask.instance_id == case.instance_id)).all()
    assert sorted(set(names)) == sorted({f"{what}: {rep}" for rep in ("sara", "steve") for what in
                                         ("Report the month's market feedback", "Check the market feedback")}
                                        | {"Consolidate the region's feedback"})
    case.step("sam", "consolidate_region_feedback", {"regional_summary": "East grows; North flat; price pressure"},
              not_for="rita")
    case.step("rita", "analyse_market_feedback", {"feedback_analysis": "Matches the plan", "answer_to_sales": "OK",
                                                  "action_needed": action, "action_description": "Answer prices"},
              not_for="sam")
    if task:
        other = "mark" if who == "sam" else "sam"
        assert task not in case.tasks_of(other)
        case.step(who, task, FOLLOWED_UP, not_for="rita")
    assert case.status("rita") == "completed"


# --- monthly performance review ------------------------------------------------------------

FIGURES = {"review_month": "2026-11", "units_reviewed": "4", "proposal_kind": "promotion",
           "performance_figures": "North: 1.21 M sold, 1.05 M collected, 4 of 4 diaries",
           "proposed_changes": "Sara Kim to senior representative (rule 4.2)"}


def test_performance_review_with_rework_and_send_back(app, db, now):
    case, due = start_period(app, db, now, "performance_review")
    assert (due.day, due.hour) == (2, 8), "the second of the month at 08:00 UTC"
    case.step("clara", "compile_performance_review", FIGURES, not_for="mark")
    case.step("mark", "review_performance_proposal", {"mm_decision": "rework", "mm_comment": "Add East"},
              not_for="clara")
    case.step("clara", "compile_performance_review", {**FIGURES, "units_reviewed": "5"}, not_for="grace")
    case.step("mark", "review_performance_proposal", {"mm_decision": "forward"}, not_for="grace")
    case.step("grace", "approve_performance_changes", {"gm_decision": "reject", "gm_comment": "Wait a month"},
              not_for="mark")
    case.step("clara", "compile_performance_review", {**FIGURES, "proposal_kind": "none", "proposed_changes": ""},
              not_for="mark")
    case.step("mark", "review_performance_proposal", {"mm_decision": "forward"}, not_for="grace")
    assert "approve_performance_changes" not in case.tasks_of("grace"), "no changes: nothing to approve"
    assert case.status("clara") == "completed"


def test_performance_review_approved_and_people_informed(app, db, now):
    case, _ = start_period(app, db, now, "performance_review")
    case.step("clara", "compile_performance_review", FIGURES, not_for="grace")
    case.step("mark", "review_performance_proposal", {"mm_decision": "forward"}, not_for="clara")
    case.step("grace", "approve_performance_changes", {"gm_decision": "approve"}, not_for="clara")
    case.step("clara", "inform_people_concerned", {"informed_date": "2026-12-09", "archive_reference": "PR-2026-11"},
              not_for="grace")
    assert case.status("clara") == "completed"


def test_performance_review_nobody_reviews_their_own_proposal(app, db, now):
    """Clara also holds the marketing manager's role: she compiled, so the review is Mark's."""
    from engine import people, users

    with db() as session:
        clara = users.user_by_name(session, "clara")
        people.update_access(session, None, clara.id, ["clerk", "marketing_manager"], True)
        session.commit()
    case, _ = start_period(app, db, now, "performance_review")
    case.step("clara", "compile_performance_review", FIGURES, not_for="grace")
    task_id = case.tasks_of("mark")["review_performance_proposal"]
    refused = case.client("clara").post(f"/tasks/{task_id}/claim")
    assert refused.status_code in (403, 409), refused.status_code
    assert "separation of duties" in refused.get_data(as_text=True)
    case.step("mark", "review_performance_proposal", {"mm_decision": "forward"}, not_for="grace")
    assert "approve_performance_changes" in case.tasks_of("grace")


# --- staff training ------------------------------------------------------------------------

TRAINING = {"title": "Training: new representatives", "audience": "business_staff",
            "training_topics": "Product lines, price discipline", "first_session_date": "2027-01-12",
            "session_dates": "12 and 13 January, head office", "participants": "Steve Hall\nSara Kim",
            "trainer": "Amy Wu", "pass_score": "70"}
EFFECT = {"participants_attended": "2", "average_test_score": "84", "manager_assessment": "good"}


def test_training_of_business_staff_with_a_follow_up_session(app):
    case = Case(app, "amy", "staff_training", {**TRAINING, "training_material": (io.BytesIO(b"%PDF-1.7\n%%EOF\n"),
                                                                                  "material.pdf")})
    case.step("sam", "confirm_attendance_staff", {"participants_confirmed": "2"}, not_for="dora")
    case.step("amy", "check_training_effect", {**EFFECT, "average_test_score": "55"}, not_for="sam")
    case.step("amy", "plan_follow_up_session", {"follow_up_date": "2027-01-26", "follow_up_topics": "Pricing"},
              not_for="sam")
    case.step("amy", "check_training_effect", {**EFFECT, "manager_assessment": "poor"}, not_for="sam")
    case.step("amy", "plan_follow_up_session", {"follow_up_date": "2027-02-02", "follow_up_topics": "Diary"},
              not_for="sam")
    case.step("amy", "check_training_effect", EFFECT, not_for="sam")
    assert case.status("amy") == "completed"


def test_training_of_dealer_staff_confirmed_by_the_dealer(app):
    case = Case(app, "amy", "staff_training", {**TRAINING, "audience": "dealer_staff",
                                               "participants": "Oakline Hamburg: 4 staff"})
    assert "confirm_attendance_staff" not in case.tasks_of("sam")
    case.step("dora", "confirm_attendance_dealer", {"participants_confirmed": "3", "absentees": "One on leave"},
              not_for="sam")
    case.step("amy", "check_training_effect", {**EFFECT, "participants_attended": "3"}, not_for="dora")
    assert case.status("amy") == "completed"


def test_training_refuses_a_pass_score_over_100(login_as):
    refused = login_as("amy").post("/processes/staff_training/start", data={**TRAINING, "pass_score": "120"})
    assert refused.status_code == 422 and 'data-field="pass_score"' in refused.get_data(as_text=True)


def test_market_feedback_month_without_representatives_goes_straight_to_consolidation(app, db, now):
    """Nobody holds the sales representative role: no report is owed, so the sales manager consolidates at once
    (and says so) instead of the case waiting for reports nobody can file."""
    from engine import people, users

    with db() as session:
        for name in ("sara", "steve"):
            rep = users.user_by_name(session, name)
            people.update_access(session, None, rep.id, [key for key in rep.role_keys if key != "sales_rep"], True)
        session.commit()
    case, _ = start_period(app, db, now, "market_feedback")
    assert task_holders(db, case) == {"consolidate_region_feedback": [None]}
    case.step("sam", "consolidate_region_feedback", {"regional_summary": "No reports this month"}, not_for="rita")
    assert task_holders(db, case) == {"analyse_market_feedback": [None]}
