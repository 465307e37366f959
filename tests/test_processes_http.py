"""Each shipped process driven end to end over HTTP by the right demo users.

Every step finds the task in the expected user's inbox (and not in the inbox of someone
of another role), claims it and completes its form; the case must end completed.
"""

from __future__ import annotations

import re

import pytest

from workflows.catalogue import DEMO_PASSWORD

ROW = re.compile(r'<tr data-task-id="(\d+)" data-element-id="([^"]+)" data-instance-id="(\d+)">')


class Case:
    """One process instance, moved forward through the web pages."""

    def __init__(self, app, starter: str, key: str, values: dict[str, str]):
        self.app = app
        self.clients: dict = {}
        response = self.client(starter).post(f"/processes/{key}/start", data=values)
        assert response.status_code == 302, response.get_data(as_text=True)[:2000]
        self.instance_id = int(response.location.rsplit("/", 1)[1])

    def client(self, username: str):
        if username not in self.clients:
            client = self.app.test_client()
            assert client.post("/login", data={"username": username, "password": DEMO_PASSWORD}).status_code == 302
            self.clients[username] = client
        return self.clients[username]

    def tasks_of(self, username: str) -> dict[str, int]:
        page = self.client(username).get("/").get_data(as_text=True)
        return {element: int(task) for task, element, instance in ROW.findall(page)
                if int(instance) == self.instance_id}

    def step(self, username: str, element_id: str, values: dict[str, str], *, not_for: str) -> None:
        mine = self.tasks_of(username)
        assert element_id in mine, f"{username} should have {element_id}, has {mine}"
        assert element_id not in self.tasks_of(not_for), f"{not_for} must not see {element_id}"
        task_id = mine[element_id]
        client = self.client(username)
        assert client.post(f"/tasks/{task_id}/claim").status_code == 302
        response = client.post(f"/tasks/{task_id}/complete", data=values)
        assert response.status_code == 302, response.get_data(as_text=True)[:3000]
        assert element_id not in self.tasks_of(username) or self.tasks_of(username)[element_id] != task_id

    def status(self, username: str) -> str:
        page = self.client(username).get(f"/instances/{self.instance_id}").get_data(as_text=True)
        return re.search(r'id="instance-status">(\w+)<', page).group(1)


APPROVE = "approve"

NEW_PRODUCT = {"title": "Oak sofa line", "product_name": "Oak sofa", "product_code": "OS-1",
               "product_description": "Three-seat oak sofa", "product_ready_date": "2027-03-01",
               "estimated_unit_cost": "420.50"}
LAUNCH_PLAN = {"target_market": "Young families", "positioning": "Solid wood, mid price", "launch_price": "899",
               "sales_channels": "Dealers, flagship stores", "promotion_plan": "Spring fair, catalogue",
               "launch_date": "2027-04-15", "launch_budget": "250000"}


def test_new_product_launch(app):
    case = Case(app, "diego", "new_product_launch", NEW_PRODUCT)
    case.step("rita", "draft_launch_plan", LAUNCH_PLAN, not_for="mark")
    case.step("mark", "review_launch_plan", {"plan_review_decision": "reject", "plan_review_comment": "Price?"},
              not_for="rita")
    case.step("rita", "draft_launch_plan", {**LAUNCH_PLAN, "launch_price": "849"}, not_for="grace")
    case.step("mark", "review_launch_plan", {"plan_review_decision": APPROVE}, not_for="grace")
    case.step("grace", "approve_launch_budget", {"budget_decision": APPROVE, "approved_budget": "240000"},
              not_for="mark")
    case.step("sam", "plan_rollout", {"rollout_regions": "North, East", "rollout_dealers": "Oakline, Casa",
                                      "rollout_start_date": "2027-04-20"}, not_for="steve")
    case.step("steve", "report_first_orders", {"first_orders_units": "120", "market_feedback": "Strong interest"},
              not_for="sam")
    case.step("mark", "launch_review", {"launch_on_schedule": "true", "launch_result": "successful",
                                        "launch_review_summary": "On time, on budget"}, not_for="rita")
    assert case.status("diego") == "completed"


PLAN = {"title": "Marketing plan 2027", "plan_year": "2027", "marketing_strategy": "Grow dealers in the east",
        "sales_target": "12000000", "total_budget": "800000", "ad_expense_q1": "200000",
        "ad_expense_q2": "200000", "ad_expense_q3": "200000", "ad_expense_q4": "200000"}


@pytest.mark.parametrize(("budget", "needs_gm"), [("800000", True), ("400000", False)])
def test_marketing_plan_approval(app, budget, needs_gm):
    case = Case(app, "rita", "marketing_plan_approval", {**PLAN, "total_budget": budget})
    case.step("mark", "review_marketing_plan", {"mm_review_decision": "reject", "gm_threshold": "500000",
                                                "mm_review_comment": "More on Q4"}, not_for="rita")
    revised = {k: v for k, v in PLAN.items() if k not in ("title", "plan_year")}
    case.step("rita", "revise_marketing_plan", {**revised, "total_budget": budget, "revision_notes": "Q4 detail"},
              not_for="mark")
    case.step("mark", "review_marketing_plan", {"mm_review_decision": APPROVE, "gm_threshold": "500000"},
              not_for="fiona")
    case.step("fiona", "check_marketing_budget", {"finance_decision": APPROVE}, not_for="grace")
    if needs_gm:
        case.step("grace", "approve_marketing_plan", {"gm_decision": APPROVE}, not_for="sam")
    else:
        assert "approve_marketing_plan" not in case.tasks_of("grace")
    case.step("sam", "acknowledge_marketing_plan", {"plan_acknowledged": "true"}, not_for="grace")
    assert case.status("rita") == "completed"


DRAWING = {"title": "Drawings for Hotel Aurora", "customer_name": "Hotel Aurora", "project_name": "Lobby refit",
           "drawings_needed_by": "2027-01-31", "product_lines": "Lounge chairs, tables", "quantity": "40"}


def test_engineering_drawing_application(app):
    case = Case(app, "steve", "engineering_drawing_application", DRAWING)
    case.step("clara", "register_application", {"registration_number": "ED-2026-014",
                                                "registration_date": "2026-11-26"}, not_for="steve")
    case.step("mark", "approve_application", {"application_decision": "reject",
                                              "application_comment": "Quantity?"}, not_for="clara")
    assert "amend_application" not in case.tasks_of("sara"), "the amendment goes to the applicant only"
    amended = {k: v for k, v in DRAWING.items() if k != "title"}
    case.step("steve", "amend_application", {**amended, "quantity": "44", "amendment_notes": "Confirmed 44"},
              not_for="sara")
    case.step("mark", "approve_application", {"application_decision": APPROVE}, not_for="clara")
    case.step("diego", "deliver_drawings", {"drawing_reference": "DWG-881", "drawings_delivered_date": "2027-01-20"},
              not_for="mark")
    case.step("clara", "close_application", {"archive_reference": "ARCH-77"}, not_for="diego")
    assert case.status("steve") == "completed"


AUDIT = {"title": "Audit Oakline Hamburg", "dealer_name": "Oakline", "store_name": "Hamburg City",
         "region": "North", "audit_date": "2026-12-03"}
ALL_OK = {"decoration_ok": "true", "price_discipline_ok": "true", "no_cross_region_selling": "true",
          "display_ok": "true"}


def test_dealer_audit_with_rectification(app):
    case = Case(app, "mark", "dealer_audit", AUDIT)
    case.step("amy", "inspect_dealer", {**ALL_OK, "price_discipline_ok": "false", "findings": "Discounts"},
              not_for="dora")
    case.step("dora", "rectify_findings", {"rectification_deadline": "2026-12-20",
                                           "rectification_actions": "Prices restored"}, not_for="amy")
    case.step("amy", "recheck_dealer", {**ALL_OK, "display_ok": "false"}, not_for="mark")
    case.step("dora", "rectify_findings", {"rectification_deadline": "2027-01-10",
                                           "rectification_actions": "New display"}, not_for="mark")
    case.step("amy", "recheck_dealer", ALL_OK, not_for="dora")
    case.step("mark", "close_audit", {"audit_rating": "B"}, not_for="amy")
    assert case.status("mark") == "completed"


def test_dealer_audit_compliant_goes_straight_to_closing(app):
    case = Case(app, "mark", "dealer_audit", AUDIT)
    case.step("amy", "inspect_dealer", ALL_OK, not_for="dora")
    case.step("mark", "close_audit", {"audit_rating": "A"}, not_for="dora")
    assert case.status("mark") == "completed"


COMPLAINT = {"title": "Wobbly chair, order 5521", "customer_name": "J. Weber", "customer_contact": "0171 555 0101",
             "product_name": "Oak chair", "problem_type": "quality",
             "complaint_description": "Leg came loose after two weeks"}


def test_customer_complaint_quality_with_escalation(app):
    case = Case(app, "cathy", "customer_complaint", COMPLAINT)
    case.step("cathy", "classify_complaint", {"severity": "medium", "confirmed_type": "quality"}, not_for="sam")
    case.step("paula", "resolve_quality_problem", {"root_cause": "Glue", "quality_resolution": "New leg",
                                                   "quality_resolved_date": "2026-12-01"}, not_for="sam")
    case.step("cathy", "confirm_with_customer", {"customer_resolved": "false", "satisfaction": "dissatisfied"},
              not_for="paula")
    case.step("mark", "decide_unresolved_complaint", {"escalation_decision": "reassign"}, not_for="cathy")
    case.step("paula", "resolve_quality_problem", {"root_cause": "Batch", "quality_resolution": "Replace chair",
                                                   "quality_resolved_date": "2026-12-05"}, not_for="sam")
    case.step("cathy", "confirm_with_customer", {"customer_resolved": "true", "satisfaction": "satisfied"},
              not_for="mark")
    assert case.status("cathy") == "completed"


def test_customer_complaint_delivery_goes_to_sales(app):
    case = Case(app, "cathy", "customer_complaint", {**COMPLAINT, "problem_type": "delivery"})
    case.step("cathy", "classify_complaint", {"severity": "low", "confirmed_type": "delivery"}, not_for="paula")
    case.step("sam", "resolve_service_problem", {"service_resolution": "Redelivered",
                                                 "service_resolved_date": "2026-11-30"}, not_for="paula")
    case.step("cathy", "confirm_with_customer", {"customer_resolved": "false", "satisfaction": "neutral"},
              not_for="sam")
    case.step("mark", "decide_unresolved_complaint", {"escalation_decision": "close", "remedy": "Voucher"},
              not_for="sam")
    assert case.status("cathy") == "completed"


def test_sales_target_setting(app):
    case = Case(app, "sam", "sales_target_setting", {"title": "Targets 2027", "target_year": "2027",
                                                    "target_period": "year"})
    case.step("sara", "submit_regional_forecast", {"forecast_region": "East", "forecast_amount": "3100000"},
              not_for="rita")
    case.step("rita", "consolidate_forecast", {"consolidated_forecast": "12400000",
                                               "consolidation_notes": "In line with plan"}, not_for="mark")
    proposal = {"proposed_target": "13000000", "target_breakdown": "N 4M, E 3.5M, S 3M, W 2.5M"}
    case.step("mark", "propose_sales_targets", proposal, not_for="sam")
    case.step("sam", "review_proposed_targets", {"sm_decision": "send_back", "sm_comment": "Too high"},
              not_for="grace")
    case.step("mark", "propose_sales_targets", {**proposal, "proposed_target": "12600000"}, not_for="grace")
    case.step("sam", "review_proposed_targets", {"sm_decision": "accept"}, not_for="mark")
    case.step("grace", "approve_sales_targets", {"gm_decision": "reject", "gm_comment": "Split by quarter"},
              not_for="sam")
    case.step("mark", "propose_sales_targets", proposal, not_for="grace")
    case.step("sam", "review_proposed_targets", {"sm_decision": "accept"}, not_for="grace")
    case.step("grace", "approve_sales_targets", {"gm_decision": APPROVE, "approved_target": "12600000"},
              not_for="mark")
    assert case.status("sam") == "completed"


def test_invalid_completion_keeps_values_and_names_fields(app):
    case = Case(app, "cathy", "customer_complaint", COMPLAINT)
    task_id = case.tasks_of("cathy")["classify_complaint"]
    response = case.client("cathy").post(f"/tasks/{task_id}/complete",
                                         data={"severity": "apocalyptic", "classification_notes": "typed text"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert re.search(r'data-field="severity">.*?Choose one of the listed options', page, re.S)
    assert re.search(r'data-field="confirmed_type">.*?This field is required', page, re.S)
    assert ">typed text</textarea>" in page or 'value="typed text"' in page
    assert case.tasks_of("cathy")["classify_complaint"] == task_id, "nothing was saved"


def test_double_completion_over_http_says_who(app):
    case = Case(app, "cathy", "customer_complaint", COMPLAINT)
    task_id = case.tasks_of("cathy")["classify_complaint"]
    values = {"severity": "low", "confirmed_type": "service"}
    assert case.client("cathy").post(f"/tasks/{task_id}/complete", data=values).status_code == 302
    again = case.client("cathy").post(f"/tasks/{task_id}/complete", data=values)
    assert again.status_code == 409
    assert "already completed by Cathy Ortiz at" in again.get_data(as_text=True)


def test_other_roles_get_403_on_task_pages(app):
    case = Case(app, "cathy", "customer_complaint", COMPLAINT)
    task_id = case.tasks_of("cathy")["classify_complaint"]
    for username in ("sam", "dora"):
        client = case.client(username)
        assert client.get(f"/tasks/{task_id}").status_code == 403
        assert client.post(f"/tasks/{task_id}/claim").status_code == 403
        assert client.post(f"/tasks/{task_id}/complete", data={"severity": "low"}).status_code == 403
    assert case.client("sam").get(f"/instances/{case.instance_id}").status_code == 403


def test_my_requests_show_step_and_holder(app):
    case = Case(app, "cathy", "customer_complaint", COMPLAINT)
    task_id = case.tasks_of("cathy")["classify_complaint"]
    case.client("cathy").post(f"/tasks/{task_id}/complete", data={"severity": "high", "confirmed_type": "delivery"})
    page = case.client("cathy").get("/requests").get_data(as_text=True)
    row = re.search(rf'<tr data-instance-id="{case.instance_id}">(.*?)</tr>', page, re.S).group(1)
    assert "Wobbly chair, order 5521" in row and "running" in row
    assert "Resolve service / delivery problem" in row
    assert "Sales manager" in row, "the holder is shown by role name"
    detail = case.client("cathy").get(f"/instances/{case.instance_id}").get_data(as_text=True)
    assert "Delivery" in detail and "Classify complaint" in detail
