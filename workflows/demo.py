"""Demo cases: a few finished and a few waiting cases, so that a new user's inbox, requests
and the auditors' pages have something to show. Played through the engine API, exactly as
people would through the inbox."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import actions, clock, notify, users
from engine.db import HumanTask, ProcessInstance, User


class Player:
    """Moves cases forward as the demo people, one committed step at a time."""

    def __init__(self, session: Session):
        self.session = session

    def start(self, username: str, process_key: str, values: dict[str, Any]) -> int:
        instance = actions.start_process(self.session, self._user(username), process_key, values)
        self.session.commit()
        return instance.id

    def start_scheduled(self, process_key: str, day: date) -> int:
        """A case of a process started by a timer, as the worker starts it on ``day`` at 08:00."""
        occurrence = datetime.combine(day, time(8, 0))
        instance = actions.start_scheduled(self.session, users.system_user(self.session), process_key, occurrence)
        self.session.commit()
        return instance.id

    def open_task(self, instance_id: int, element_id: str | None = None) -> int:
        """The case's one open task (of ``element_id``, when several are open at once)."""
        query = select(HumanTask.id).where(HumanTask.instance_id == instance_id, HumanTask.status == "open")
        if element_id is not None:
            query = query.where(HumanTask.element_id == element_id)
        ids = list(self.session.scalars(query))
        if len(ids) != 1:
            raise RuntimeError(f"case {instance_id} has open tasks {ids}, expected one")
        return ids[0]

    def complete(self, username: str, instance_id: int, values: dict[str, Any], element_id: str | None = None) -> None:
        task_id = self.open_task(instance_id, element_id)
        actions.complete_task(self.session, self._user(username), task_id, values)
        self.session.commit()

    def complete_own(self, username: str, instance_id: int, values: dict[str, Any]) -> None:
        """Complete the open task assigned to ``username`` (a case that gives each person their own)."""
        user = self._user(username)
        task_id = self.session.scalar(select(HumanTask.id).where(
            HumanTask.instance_id == instance_id, HumanTask.status == "open", HumanTask.assignee_id == user.id))
        if task_id is None:
            raise RuntimeError(f"case {instance_id} has no open task of {username}")
        actions.complete_task(self.session, user, task_id, values)
        self.session.commit()

    def claim(self, username: str, instance_id: int) -> None:
        actions.claim(self.session, self._user(username), self.open_task(instance_id))
        self.session.commit()

    def _user(self, username: str):
        user = users.user_by_name(self.session, username)
        if user is None:
            raise RuntimeError(f"no demo user {username}")
        return user


def play_waiting_cases(player: Player, today: date) -> None:
    """Three cases waiting for the marketing manager; he has claimed the plan review."""
    plan = player.start("rita", "marketing_plan_approval", {
        "title": f"Marketing plan {today.year + 1}", "plan_year": str(today.year + 1),
        "marketing_strategy": "Grow the specialty-store channel; two regional campaigns; new sofa line.",
        "sales_target": "12000000", "total_budget": "900000", "ad_expense_q1": "200000",
        "ad_expense_q2": "250000", "ad_expense_q3": "200000", "ad_expense_q4": "250000",
    })
    player.claim("mark", plan)

    drawings = player.start("steve", "engineering_drawing_application", {
        "title": "Drawings: Harbour Hotel lobby", "customer_name": "Harbour Hotel Group",
        "project_name": "Lobby refurbishment", "drawings_needed_by": (today + timedelta(days=21)).isoformat(),
        "product_lines": "Oslo sofas, Bergen lounge chairs", "quantity": "64",
    })
    player.complete("clara", drawings, {"registration_number": "EDA-0042", "registration_date": today.isoformat()})

    complaint = player.start("cathy", "customer_complaint", {
        "title": "Complaint: Wang, late sofa delivery", "customer_name": "Mrs Wang",
        "customer_contact": "wang@example.com", "product_name": "Sofa Oslo 3-seater", "problem_type": "delivery",
        "complaint_description": "Delivered three weeks late, after two missed appointments.",
    })
    player.complete("cathy", complaint, {"severity": "high", "confirmed_type": "delivery"})
    player.complete("sam", complaint, {"service_resolution": "Apologised; 10 % voucher.",
                                       "service_resolved_date": today.isoformat()})
    player.complete("cathy", complaint, {"customer_resolved": "false", "satisfaction": "dissatisfied",
                                         "confirmation_comment": "Wants a refund of the delivery fee."})


def play_finished_cases(player: Player, today: date) -> None:
    """A dealer audit with a rectification loop and a resolved complaint, both finished."""
    audit = player.start("mark", "dealer_audit", {
        "title": "Audit: Oakline Hamburg City", "dealer_name": "Oakline", "store_name": "Hamburg City",
        "region": "North", "audit_date": today.isoformat(),
    })
    checklist = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true",
                 "display_ok": "true"}
    player.complete("amy", audit, {**checklist, "price_discipline_ok": "false",
                                   "findings": "Sofas sold 15 % under the list price."})
    player.complete("dora", audit, {"rectification_deadline": (today + timedelta(days=14)).isoformat(),
                                    "rectification_actions": "List prices restored; staff briefed."})
    player.complete("amy", audit, {**checklist, "findings": "Prices back to list."})
    player.complete("mark", audit, {"audit_rating": "B", "closing_comment": "Compliant after rectification."})

    complaint = player.start("cathy", "customer_complaint", {
        "title": "Complaint: Weber, wobbly chair", "customer_name": "J. Weber", "customer_contact": "0171 555 0101",
        "product_name": "Oak chair", "problem_type": "quality", "complaint_description": "A leg came loose.",
    })
    player.complete("cathy", complaint, {"severity": "medium", "confirmed_type": "quality"})
    player.complete("paula", complaint, {"root_cause": "Glue batch", "quality_resolution": "Replaced the chair",
                                         "quality_resolved_date": today.isoformat()})
    player.complete("cathy", complaint, {"customer_resolved": "true", "satisfaction": "satisfied"})


def play_department_cases(player: Player, today: date) -> None:
    """A few cases of each of the department's other processes (issue 20): finished ones and waiting ones."""
    monday = today - timedelta(days=today.weekday())
    last_week = player.start_scheduled("sales_diary", monday - timedelta(weeks=1))  # a diary task for each rep
    player.complete_own("steve", last_week, {
        "diary_week": f"{monday - timedelta(weeks=1):%G-W%V}", "sales_region": "North", "visits_count": "11",
        "visits": "Oakline Hamburg: new sofa display\nHotel Alster: lobby chairs, second visit",
        "orders_count": "4", "orders_value": "23800", "issues": "Dealers ask for shorter delivery times."})
    player.complete("clara", last_week, {"diary_registration_number": f"SD-{today.year}-0141",
                                         "diary_complete": "true"}, "register_sales_diary")
    player.complete_own("sara", last_week, {
        "diary_week": f"{monday - timedelta(weeks=1):%G-W%V}", "sales_region": "South", "visits_count": "8",
        "visits": "Casa Moebel Munich: spring catalogue\nHotel Isar: breakfast room tables",
        "orders_count": "2", "orders_value": "9400", "issues": "A competitor opened a store in Augsburg."})
    player.complete("clara", last_week, {"diary_registration_number": f"SD-{today.year}-0142",
                                         "diary_complete": "true"})
    player.start_scheduled("sales_diary", monday)  # this week's diaries: waiting for each representative

    bid = {"customer_name": "City of Lindau", "project_name": "Public library reading rooms", "bid_type": "tender",
           "bid_deadline": (today + timedelta(days=20)).isoformat(), "estimated_value": "380000",
           "product_lines": "Bergen reading chairs, Oslo tables"}
    won = player.start("sara", "bid_suggestion", {**bid, "title": "Bid: Lindau library reading rooms"})
    player.complete("rita", won, {"suggested_price": "352000", "suggested_products": "120 Bergen chairs, 30 tables",
                                  "competitors": "Nordform bids low on price", "win_chance": "60"})
    player.complete("mark", won, {"bid_decision": "bid", "approved_price": "345000"})
    player.complete("sara", won, {"bid_outcome": "won", "contract_value": "345000",
                                  "outcome_notes": "Delivery time decided it."})
    waiting = player.start("steve", "bid_suggestion", {
        **bid, "title": "Consultation: Harbour Hotel conference wing", "customer_name": "Harbour Hotel Group",
        "project_name": "Conference wing", "bid_type": "consultation", "estimated_value": "150000"})
    player.complete("rita", waiting, {"suggested_price": "141000", "suggested_products": "Stacking chairs, tables",
                                      "competitors": "Two local makers", "win_chance": "40"})

    campaign = {"campaign_type": "advertising", "agency": "Blau & Partner", "media": "Regional radio, outdoor",
                "campaign_goal": "Bring families to the spring sofa week.", "goal_target": "600 leads",
                "campaign_budget": "40000", "campaign_start": (today + timedelta(days=30)).isoformat(),
                "campaign_end": (today + timedelta(days=51)).isoformat()}
    approved = player.start("rita", "ad_campaign_approval", {**campaign, "title": "Campaign: spring sofa week"})
    player.complete("mark", approved, {"mm_decision": "approve", "ad_plan_remaining": "120000"})
    player.complete("fiona", approved, {"finance_confirmed": "true", "budget_code": f"AD-{today.year}"})
    large = player.start("rita", "ad_campaign_approval", {**campaign, "title": "Campaign: autumn TV spots",
                                                          "media": "Regional TV", "campaign_budget": "180000",
                                                          "goal_target": "+8 % sell-through"})
    player.complete("mark", large, {"mm_decision": "approve", "ad_plan_remaining": "120000",
                                    "mm_comment": "Above what the plan has left: your call."})

    survey = {"survey_method": "phone", "sample_size": "60", "satisfaction_threshold": "4"}
    good = player.start("cathy", "customer_satisfaction_survey", {
        **survey, "title": f"Satisfaction survey {today.year}-{today.month:02d}",
        "survey_period": f"{today.year}-{today.month:02d}"})
    player.complete("cathy", good, {"responses": "48", "average_score": "4.4",
                                    "main_problems": "Delivery slots too wide."})
    player.complete("mark", good, {"review_decision": "close"})
    weak = player.start("cathy", "customer_satisfaction_survey", {
        **survey, "title": f"Satisfaction survey {today.year}-Q{(today.month - 1) // 3 + 1} (dealers' customers)",
        "survey_period": f"{today.year}-Q{(today.month - 1) // 3 + 1}", "survey_method": "email"})
    player.complete("cathy", weak, {"responses": "112", "average_score": "3.4",
                                    "main_problems": "Assembly instructions; missed delivery appointments."})
    player.complete("cathy", weak, {"measure_description": "Two-hour delivery windows, with an SMS the day before.",
                                    "measure_owner": "sales",
                                    "measure_deadline": (today + timedelta(days=21)).isoformat()})

    first = today.replace(day=1)
    last_month = (first - timedelta(days=1)).replace(day=1)
    feedback = player.start_scheduled("market_feedback", first)  # a report task for each representative
    player.complete_own("sara", feedback, {
        "feedback_month": f"{last_month:%Y-%m}", "sales_region": "East", "store_coverage": "42",
        "channel_development": "Two new specialty stores in Dresden; one dealer closed in Halle.",
        "sell_through_display": "Oslo sofas sell through in six weeks; displays mostly to standard.",
        "competitor_moves": "Nordform cut oak table prices by 10 %.",
        "dealer_consumer_opinions": "Consumers ask for more fabric choices."})
    player.complete("sam", feedback, {"feedback_complete": "true"}, "check_market_feedback")
    player.complete_own("steve", feedback, {
        "feedback_month": f"{last_month:%Y-%m}", "sales_region": "North", "store_coverage": "57",
        "channel_development": "Oakline opened a second store in Hamburg.",
        "sell_through_display": "Bergen chairs slow; two displays below the standard.",
        "competitor_moves": "A local maker advertises solid oak at our prices."})
    player.complete("sam", feedback, {"feedback_complete": "true"}, "check_market_feedback")
    player.complete("sam", feedback, {"regional_summary": "East grows through specialty stores; North is flat; "
                                                          "price pressure on tables in both.",
                                      "requests_to_marketing": "A price answer on oak tables."})

    review = player.start_scheduled("performance_review", first + timedelta(days=1))
    player.complete("clara", review, {
        "review_month": f"{last_month:%Y-%m}", "units_reviewed": "4", "proposal_kind": "promotion",
        "performance_figures": "North: sales 1.21 M, collected 1.05 M, 4 of 4 diaries\n"
                               "East: sales 0.98 M, collected 0.97 M, 4 of 4 diaries",
        "proposed_changes": "Sara Kim to senior representative: third month above target (rule 4.2)."})
    player.complete("mark", review, {"mm_decision": "forward", "mm_comment": "Well deserved."})

    training = {"training_topics": "Product lines, price discipline, the sales diary", "trainer": "Amy Wu",
                "first_session_date": (today - timedelta(days=14)).isoformat(), "pass_score": "70",
                "session_dates": "Two mornings, head office"}
    held = player.start("amy", "staff_training", {**training, "title": "Training: new representatives",
                                                  "audience": "business_staff",
                                                  "participants": "Steve Hall\nSara Kim"})
    player.complete("sam", held, {"participants_confirmed": "2"})
    player.complete("amy", held, {"participants_attended": "2", "average_test_score": "84",
                                  "manager_assessment": "good"})
    player.start("amy", "staff_training", {  # waiting for the dealer to confirm
        **training, "title": "Training: Oakline store staff", "audience": "dealer_staff",
        "first_session_date": (today + timedelta(days=10)).isoformat(), "session_dates": "One day, Oakline Hamburg",
        "participants": "Oakline Hamburg City: 4 sales staff"})


class Clock:
    """The engine's clock while the history is played: each case at its own time, moved on step by step."""

    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1)

    def advance(self, hours: float) -> None:
        self.now += timedelta(hours=hours)


@contextmanager
def controlled_clock() -> Iterator[Clock]:
    moving = Clock()
    clock.set_clock(lambda: moving.now)
    try:
        yield moving
    finally:
        clock.set_clock(None)


REGIONS = ("North", "South", "East", "West")
CHECKLIST = ("decoration_ok", "price_discipline_ok", "no_cross_region_selling", "display_ok")
#: how many cases of each process the history plays (finished cases only: no timer waits in the past)
HISTORY = {"customer_complaint": 14, "dealer_audit": 8, "engineering_drawing_application": 10,
           "marketing_plan_approval": 2}


def play_history(player: Player, today: date, days: int = 120) -> None:
    """About four months of finished cases, so that the dashboard has figures on first start: played through
    the engine under a controlled clock (each case at its own time), never written as rows. Seeded, so every
    demo database has the same history relative to ``today``."""
    rng = random.Random(19)
    first = datetime(today.year, today.month, today.day, 9) - timedelta(days=days)
    plans: list[tuple[str, Any]] = []
    for process, count in HISTORY.items():
        for n in range(count):
            offset = timedelta(days=rng.uniform(0, days - 12), hours=rng.choice((0, 1, 2, 5, 7)))
            plans.append((process, (first + offset, n, rng.random())))
    plans.sort(key=lambda item: item[1][0])
    with controlled_clock() as moving:
        for process, (start, n, roll) in plans:
            moving.now = start
            _PLAYS[process](player, moving, rng, n, roll)


def _hours(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 1)


def _history_complaint(player: Player, moving: Clock, rng: random.Random, n: int, roll: float) -> None:
    quality = roll < 0.55
    case = player.start("cathy", "customer_complaint", {
        "title": f"Complaint {n + 1}: {'wobbly chair' if quality else 'late delivery'}",
        "customer_name": f"Customer {n + 1}", "customer_contact": f"customer{n + 1}@example.com",
        "product_name": "Oak chair" if quality else "Sofa Oslo 3-seater",
        "problem_type": "quality" if quality else "delivery", "complaint_description": "See the notes."})
    moving.advance(_hours(rng, 1, 30))
    player.complete("cathy", case, {"severity": rng.choice(("low", "medium", "high")),
                                    "confirmed_type": "quality" if quality else "delivery"})
    moving.advance(_hours(rng, 4, 130))
    if quality:
        player.complete("paula", case, {"root_cause": "Glue batch", "quality_resolution": "Replaced the part",
                                        "quality_resolved_date": moving.now.date().isoformat()})
    else:
        player.complete("sam", case, {"service_resolution": "Apologised; voucher",
                                      "service_resolved_date": moving.now.date().isoformat()})
    moving.advance(_hours(rng, 1, 40))
    player.complete("cathy", case, {"customer_resolved": "true", "satisfaction": rng.choice(("satisfied",
                                                                                            "very_satisfied"))})


def _history_audit(player: Player, moving: Clock, rng: random.Random, n: int, roll: float) -> None:
    region = REGIONS[n % len(REGIONS)]
    case = player.start("mark", "dealer_audit", {
        "title": f"Audit: store {n + 1}, {region}", "dealer_name": "Oakline", "store_name": f"Store {n + 1}",
        "region": region, "audit_date": moving.now.date().isoformat()})
    failed = {name for name in CHECKLIST if rng.random() < 0.08}
    moving.advance(_hours(rng, 24, 200))
    player.complete("amy", case, {**{name: str(name not in failed).lower() for name in CHECKLIST},
                                  "findings": "Points to fix: " + ", ".join(sorted(failed)) if failed else "All fine."})
    if failed:
        moving.advance(_hours(rng, 48, 300))
        player.complete("dora", case, {"rectification_deadline": (moving.now + timedelta(days=7)).date().isoformat(),
                                       "rectification_actions": "Fixed."})
        moving.advance(_hours(rng, 24, 100))
        player.complete("amy", case, {**{name: "true" for name in CHECKLIST}, "findings": "Fixed."})
    moving.advance(_hours(rng, 4, 60))
    player.complete("mark", case, {"audit_rating": "B" if failed else "A"})


def _history_drawings(player: Player, moving: Clock, rng: random.Random, n: int, roll: float) -> None:
    applicant = ("steve", "sara")[n % 2]
    application = {"customer_name": f"Hotel {n + 1}", "project_name": "Lobby", "product_lines": "Chairs",
                   "drawings_needed_by": (moving.now + timedelta(days=30)).date().isoformat(),
                   "quantity": str(10 + 5 * n)}
    case = player.start(applicant, "engineering_drawing_application",
                        {**application, "title": f"Drawings: project {n + 1}"})
    moving.advance(_hours(rng, 1, 20))
    player.complete("clara", case, {"registration_number": f"EDA-H{n + 1:03d}",
                                    "registration_date": moving.now.date().isoformat()})
    if roll < 0.3:  # sent back once: the representative amends the application
        moving.advance(_hours(rng, 4, 48))
        player.complete("mark", case, {"application_decision": "reject", "application_comment": "Quantities?"})
        moving.advance(_hours(rng, 4, 72))
        player.complete(applicant, case, {**application, "amendment_notes": "Quantities per room added."})
    moving.advance(_hours(rng, 4, 48))
    player.complete("mark", case, {"application_decision": "approve"})
    moving.advance(_hours(rng, 24, 240))
    player.complete("diego", case, {"drawing_reference": f"DRW-{n + 1:03d}",
                                    "drawings_delivered_date": moving.now.date().isoformat()})
    moving.advance(_hours(rng, 1, 24))
    player.complete("clara", case, {"archive_reference": f"ARC-{n + 1:03d}"})


def _history_plan(player: Player, moving: Clock, rng: random.Random, n: int, roll: float) -> None:
    budget = 600000 + 100000 * n
    case = player.start("rita", "marketing_plan_approval", {
        "title": f"Marketing plan, channel {n + 1}", "plan_year": str(moving.now.year + 1),
        "marketing_strategy": "Regional campaigns.", "sales_target": "8000000", "total_budget": str(budget),
        "ad_expense_q1": str(budget // 4), "ad_expense_q2": str(budget // 4), "ad_expense_q3": str(budget // 4),
        "ad_expense_q4": str(budget // 4)})
    for who, values in (("mark", {"mm_review_decision": "approve"}), ("fiona", {"finance_decision": "approve"}),
                        ("grace", {"gm_decision": "approve"}), ("sam", {"plan_acknowledged": "true"})):
        moving.advance(_hours(rng, 4, 72))
        player.complete(who, case, values)


_PLAYS = {"customer_complaint": _history_complaint, "dealer_audit": _history_audit,
          "engineering_drawing_application": _history_drawings, "marketing_plan_approval": _history_plan}


def install_demo_cases(session: Session, today: date | None = None) -> int:
    """Play the demo cases into an empty database (a database with cases is left alone).

    :returns: how many cases were started
    """
    if session.scalar(select(func.count()).select_from(ProcessInstance)):
        return 0
    player = Player(session)
    today = today or date.today()
    play_history(player, today)
    for user in session.scalars(select(User)):  # the history's notices were read back then
        notify.mark_all_read(session, user)
    session.commit()
    play_finished_cases(player, today)
    play_waiting_cases(player, today)
    play_department_cases(player, today)
    return session.scalar(select(func.count()).select_from(ProcessInstance)) or 0
