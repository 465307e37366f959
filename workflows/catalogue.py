"""The demo organisation of the marketing and sales departments: seed data that ``deptflow init --demo``
loads (roles with their permissions and managers, users, and the settings of the shipped processes).
Without ``--demo`` none of it is installed: roles, users and process settings are data that
administrators and process owners edit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BPMN_DIR = Path(os.environ.get("DEPTFLOW_BPMN_DIR", Path(__file__).resolve().parent.parent / "bpmn"))


@dataclass(frozen=True)
class RoleSpec:
    key: str
    name: str
    description: str
    #: :class:`engine.vocabulary.Permission` values the role grants
    permissions: tuple[str, ...] = ()
    #: the role whose holders reassign this role's tasks
    manager_role: str | None = None


@dataclass(frozen=True)
class ProcessSpec:
    key: str
    title: str
    file: str
    starter_roles: tuple[str, ...]
    owner_role: str
    description: str
    #: tasks the starter of a case may not do themselves (the approver is never the requester)
    separated_tasks: tuple[str, ...] = ()
    #: pairs of tasks that must be done by different people in one case (nobody reviews their own proposal)
    separated_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> Path:
        return BPMN_DIR / self.file


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    roles: tuple[str, ...]


ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("general_manager", "General manager", "Approves plans and budgets above the department's authority.",
             ("statistics",)),
    RoleSpec("marketing_manager", "Marketing manager", "Runs the marketing department: strategy, plans, budgets.",
             ("statistics",)),
    RoleSpec("assistant_marketing_manager", "Assistant marketing manager",
             "Training, research plans, dealer guidance and store audits."),
    RoleSpec("research_planning", "Research & planning specialist",
             "Market research, marketing plans, competitor intelligence, product planning."),
    RoleSpec("customer_service", "Customer service specialist",
             "Complaints, customer files, satisfaction surveys."),
    RoleSpec("clerk", "Comprehensive clerk", "Registers and files applications, statistics and archives."),
    RoleSpec("sales_manager", "Sales manager", "Regional targets and execution; manages representatives and dealers.",
             ("statistics",)),
    RoleSpec("sales_rep", "Sales representative", "Sells, ships, collects payment, reports forecasts and feedback.",
             manager_role="sales_manager"),
    RoleSpec("rnd_design", "R&D / design", "Provides products and engineering drawings."),
    RoleSpec("production", "Production", "Resolves product-quality problems; plans capacity."),
    RoleSpec("finance", "Finance", "Checks budgets against the company's finances."),
    RoleSpec("dealer", "Dealer / specialty store", "External partner selling through its own stores.",
             manager_role="assistant_marketing_manager"),
    RoleSpec("process_owner", "Process owner", "Maintains the BPMN models.", ("model", "read_all_cases")),
    RoleSpec("auditor", "Auditor", "Reviews the history of every case.", ("audit", "read_all_cases", "statistics")),
    RoleSpec("admin", "Administrator", "Manages users and roles.",
             ("administer", "audit", "model", "read_all_cases", "external_worker")),
)

PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("new_product_launch", "New product launch", "new_product_launch.bpmn", ("rnd_design",),
                "marketing_manager",
                "From a new product to its launch plan, budget approval, dealer rollout and first feedback.",
                ("review_launch_plan", "approve_launch_budget")),
    ProcessSpec("marketing_plan_approval", "Annual marketing plan and budget", "marketing_plan_approval.bpmn",
                ("research_planning",), "marketing_manager",
                "The annual marketing plan with its budget and advertising-expense plan, through approval.",
                ("review_marketing_plan", "check_marketing_budget", "approve_marketing_plan")),
    ProcessSpec("engineering_drawing_application", "Engineering drawing application",
                "engineering_drawing_application.bpmn", ("sales_rep",), "clerk",
                "A representative applies for drawings for a customer project; design delivers them.",
                ("approve_application",)),
    ProcessSpec("dealer_audit", "Dealer / store audit", "dealer_audit.bpmn", ("marketing_manager",),
                "assistant_marketing_manager",
                "Audit of a dealer or specialty store, with rectification and re-check where needed."),
    ProcessSpec("customer_complaint", "Customer complaint", "customer_complaint.bpmn", ("customer_service",),
                "customer_service",
                "Record, classify and resolve a complaint; confirm with the customer."),
    ProcessSpec("sales_target_setting", "Sales target setting", "sales_target_setting.bpmn", ("sales_manager",),
                "marketing_manager",
                "Forecasts, consolidation with the marketing plan, proposed targets, negotiation, approval.",
                ("approve_sales_targets",)),
    ProcessSpec("monthly_drawing_statistics", "Monthly drawing statistics", "monthly_drawing_statistics.bpmn", (),
                "clerk",
                "Started on the first of every month: the clerk's statistics of engineering-drawing applications, "
                "reviewed by the marketing manager."),
    ProcessSpec("sales_diary", "Weekly sales diary", "sales_diary.bpmn", (), "sales_manager",
                "Started every Monday: a representative files the week's diary (visits, orders, issues, photos), "
                "the clerk registers it; a missing diary is reminded, then followed up by the sales manager."),
    ProcessSpec("bid_suggestion", "Bid suggestion", "bid_suggestion.bpmn", ("sales_rep",), "marketing_manager",
                "A representative reports a major bid or engineering consultation; research & planning suggests "
                "price, products and the competition; the marketing manager decides whether to bid; the outcome "
                "is recorded.",
                ("decide_bid",), (("prepare_bid_suggestion", "decide_bid"),)),
    ProcessSpec("ad_campaign_approval", "Advertising campaign approval", "ad_campaign_approval.bpmn",
                ("research_planning",), "marketing_manager",
                "An advertising or promotion campaign (agency, media, budget, schedule, goal): the marketing manager "
                "approves within the advertising-expense plan, the general manager above it, finance confirms; "
                "when it is over, its result is recorded against its goal.",
                ("approve_campaign_mm", "approve_campaign_gm", "confirm_campaign_finance"),
                (("approve_campaign_mm", "approve_campaign_gm"),)),
    ProcessSpec("customer_satisfaction_survey", "Customer satisfaction survey", "customer_satisfaction_survey.bpmn",
                ("customer_service",), "customer_service",
                "Customer service surveys a sample of customers; an average below the threshold opens corrective "
                "measures with an owner and a deadline (chased when late); the marketing manager reviews.",
                (), (("plan_corrective_measures", "review_survey"),)),
    ProcessSpec("market_feedback", "Monthly market feedback", "market_feedback.bpmn", (), "research_planning",
                "Started on the first of every month: each sales representative reports their own region's market "
                "and the sales manager checks each report (sending it back to that representative when "
                "incomplete); once all are in, the sales manager consolidates the region, research & planning "
                "analyses and answers; items that need action become follow-up tasks for marketing or sales."),
    ProcessSpec("performance_review", "Monthly performance review", "performance_review.bpmn", (), "clerk",
                "Started on the second of every month: the clerk compiles each business unit's figures and proposes "
                "promotions or demotions, the marketing manager reviews, the general manager approves, the people "
                "concerned are informed. Nobody reviews or approves a proposal they compiled.",
                (), (("compile_performance_review", "review_performance_proposal"),
                     ("compile_performance_review", "approve_performance_changes"),
                     ("review_performance_proposal", "approve_performance_changes"))),
    ProcessSpec("staff_training", "Staff training", "staff_training.bpmn", ("assistant_marketing_manager",),
                "assistant_marketing_manager",
                "Training for new business staff or dealer and store staff: plan (topics, dates, participants), "
                "attendance confirmed by the sales manager or the dealer, then an effect check that may call for "
                "a follow-up session."),
)

DEMO_PASSWORD = "demo"

DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("grace", "Grace Lin", ("general_manager",)),
    DemoUser("mark", "Mark Chen", ("marketing_manager",)),
    DemoUser("amy", "Amy Wu", ("assistant_marketing_manager",)),
    DemoUser("rita", "Rita Patel", ("research_planning",)),
    DemoUser("cathy", "Cathy Ortiz", ("customer_service",)),
    DemoUser("clara", "Clara Novak", ("clerk",)),
    DemoUser("sam", "Sam Okafor", ("sales_manager",)),
    DemoUser("steve", "Steve Hall", ("sales_rep",)),
    DemoUser("sara", "Sara Kim", ("sales_rep",)),
    DemoUser("diego", "Diego Rossi", ("rnd_design",)),
    DemoUser("paula", "Paula Meyer", ("production",)),
    DemoUser("fiona", "Fiona Walsh", ("finance",)),
    DemoUser("dora", "Dora Becker", ("dealer",)),
    DemoUser("owen", "Owen Price", ("process_owner",)),
    DemoUser("alice", "Alice Stone", ("auditor",)),
    DemoUser("admin", "Ada Admin", ("admin",)),
)


def process_spec(key: str) -> ProcessSpec:
    return next(p for p in PROCESSES if p.key == key)
