"""Camunda 7 JUEL in running processes (issue 16, parts 1 and 3), on tests/data/juel_invoice.bpmn: JUEL sequence
flow conditions, candidate groups from a variable resolved through the group mapping (an incident when a group
maps to no role, gone once it is mapped and the case retried), JUEL due dates and priorities under the
controlled clock, and the form inferred for a ``camunda:formKey`` task — through the engine and over HTTP; and a
send-back to whoever completed the task (``${deptflow_completed_by.<element>}``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, case_actions, definitions, groups, mappings
from engine.db import Event, HumanTask, Process, ProcessInstance, make_engine
from engine.errors import InvalidDefinition, InvalidForm

DATA = Path(__file__).parent / "data"
XML = (DATA / "juel_invoice.bpmn").read_text()
T0 = datetime(2026, 11, 26, 9, 0)
#: the Camunda invoice's approver groups, as a start form option (the group mapping turns them into roles)
CAMUNDA_GROUPS = XML.replace('<camunda:value id="finance,sales_manager" name="Finance and sales" />',
                             '<camunda:value id="finance,sales_manager" name="Finance and sales" />'
                             '<camunda:value id="accounting,sales" name="Accounting and sales" />'
                             '<camunda:value id="accounting,legal" name="Accounting and legal" />')


def _deploy(session, xml: str = XML) -> None:
    definition = definitions.deploy(session, None, xml)
    process = session.get(Process, definition.process_key)
    process.starter_roles, process.owner_role = ["sales_rep"], "process_owner"
    session.commit()


def _map(session, user, **mapping: str) -> None:
    for group, role in mapping.items():
        groups.map_group(session, user("admin"), group, role)
    session.commit()


def _task(session, instance_id: int, element_id: str) -> HumanTask:
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                   HumanTask.element_id == element_id)).one()


def _start(session, user, **values):
    started = actions.start_process(session, user("steve"), "juel_invoice",
                                    {"title": "Hotel Aurora", "amount": 300, "approverGroups": "finance", **values})
    session.commit()
    return started


def test_the_diagram_deploys_with_its_form_key_tasks_reported(session):
    parsed, problems = definitions.parse_definition(XML, definitions.known_roles(session))
    notes = {p.element_id: str(p) for p in problems}
    assert not [p for p in problems if p.severity == "error"], problems
    assert "offers a form built from what the conditions after it read: approved (boolean)" in notes["approveInvoice"]
    assert "a form with no fields" in notes["prepareBankTransfer"]
    info = parsed.user_tasks["approveInvoice"]
    assert info.dynamic_groups == ["${approverGroups}"] and info.candidate_roles == [] and info.inferred_form
    assert [(f.id, f.type, f.required) for f in info.form.fields] == [("approved", "boolean", True)]


def test_juel_conditions_due_date_and_priority_drive_the_case(session, user, now):
    _deploy(session)
    case = _start(session, user, amount=1200, approverGroups="finance,sales_manager")
    approve = _task(session, case.id, "approveInvoice")
    assert sorted(approve.candidate_roles) == ["finance", "sales_manager"]
    assert approve.due_at == datetime(2026, 12, 3, 9, 0) and approve.priority == 80
    now.advance(hours=5)
    actions.complete_task(session, user("fiona"), approve.id, {"approved": "true"})
    session.commit()
    transfer = _task(session, case.id, "prepareBankTransfer")
    assert transfer.candidate_roles == ["finance"] and transfer.due_at == datetime(2026, 11, 27, 14, 0)
    actions.complete_task(session, user("fiona"), transfer.id, {})
    session.commit()
    instance = session.get(ProcessInstance, case.id)
    assert instance.status == "completed" and instance.data["approved"] is True


def test_not_approved_takes_the_negated_condition(session, user, now):
    _deploy(session)
    case = _start(session, user)
    approve = _task(session, case.id, "approveInvoice")
    assert approve.candidate_roles == ["finance"] and approve.priority == 40
    actions.complete_task(session, user("fiona"), approve.id, {"approved": "false"})
    session.commit()
    decided = session.scalars(select(Event).where(Event.instance_id == case.id,
                                                  Event.kind == "gateway_decision").order_by(Event.id)).all()
    assert session.get(ProcessInstance, case.id).status == "completed"
    assert [(e.data["flow"], e.data["to"], e.data["condition"]) for e in decided] == [
        ("no", "rejected", "${!approved}")]


def test_the_inferred_form_requires_a_decision_and_refuses_what_it_does_not_name(session, user, now):
    _deploy(session)
    case = _start(session, user)
    approve = _task(session, case.id, "approveInvoice")
    with pytest.raises(InvalidForm) as caught:
        actions.complete_task(session, user("fiona"), approve.id, {})
    assert caught.value.errors == {"approved": "This field is required."}
    session.rollback()
    with pytest.raises(InvalidForm) as caught:
        actions.complete_task(session, user("fiona"), approve.id, {"approved": "true", "comment": "ok"})
    assert caught.value.errors == {"comment": "This task has no field “comment”; it takes approved."}
    assert caught.value.values["comment"] == "ok"  # what was typed comes back, nothing is lost
    session.rollback()
    assert _task(session, case.id, "approveInvoice").status == "open"


def test_dynamic_groups_resolve_through_the_group_mapping(session, user, now):
    _map(session, user, accounting="finance", sales="sales_manager")
    _deploy(session, CAMUNDA_GROUPS)
    case = _start(session, user, approverGroups="accounting,sales")
    approve = _task(session, case.id, "approveInvoice")
    assert sorted(approve.candidate_roles) == ["finance", "sales_manager"]
    actions.complete_task(session, user("sam"), approve.id, {"approved": "yes"})
    session.commit()
    assert _task(session, case.id, "prepareBankTransfer").status == "open"


def test_a_group_that_maps_to_no_role_is_an_incident_until_mapped(session, user, now):
    _map(session, user, accounting="finance")
    _deploy(session, CAMUNDA_GROUPS)  # deploys: ${approverGroups} cannot be checked before the case runs
    case = _start(session, user, approverGroups="accounting,legal")
    instance = session.get(ProcessInstance, case.id)
    assert instance.status == "incident"
    assert not session.scalars(select(HumanTask).where(HumanTask.instance_id == case.id)).all()  # nobody's task
    incident = session.scalars(select(Event).where(Event.instance_id == case.id, Event.kind == "incident")).one()
    assert incident.element_id == "approveInvoice"
    assert "candidate group “legal” (from ${approverGroups}) is neither a role nor mapped to one" in str(incident.data)
    _map(session, user, legal="general_manager")
    case_actions.retry(session, user("admin"), case.id, "legal mapped")
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "running"
    assert sorted(_task(session, case.id, "approveInvoice").candidate_roles) == ["finance", "general_manager"]


def test_assignee_and_mixed_group_lists_from_expressions(session, user, now):
    approver = ('<camunda:formField id="approver" label="Approver" type="string" />'
                '<camunda:formField id="approverGroups"')
    xml = (XML.replace('<camunda:formField id="approverGroups"', approver)
           .replace('camunda:candidateGroups="${approverGroups}"',
                    'camunda:candidateGroups="general_manager, ${approverGroups}" camunda:assignee="${approver}"'))
    _deploy(session, xml)
    case = _start(session, user, approver="fiona")
    approve = _task(session, case.id, "approveInvoice")
    assert approve.candidate_roles == ["general_manager", "finance"]
    assert approve.assignee_id == user("fiona").id
    other = _start(session, user, approver="")  # no username: the task waits in its roles' queue
    assert _task(session, other.id, "approveInvoice").assignee_id is None


def test_groups_page_lists_static_groups_only(session):
    xml = CAMUNDA_GROUPS.replace('camunda:candidateGroups="finance"', 'camunda:candidateGroups="accounting"')
    uses = mappings.uses(groups.KIND, xml, "juel_invoice", "v1")
    assert [(u.name, u.element_id) for u in uses] == [("accounting", "prepareBankTransfer")]


@pytest.mark.parametrize(("old", "new", "element", "message"), [
    ("${approved}</bpmn:conditionExpression>", "${invoiceService.isApproved()}</bpmn:conditionExpression>", "yes",
     "the method call “invoiceService.isApproved(…)” is not supported"),
    ("${!approved}", "${execution.getVariable('approved') == false}", "no",
     "Camunda's “execution” object is not available in deptflow"),
    ('camunda:candidateGroups="${approverGroups}"', 'camunda:candidateGroups="finance, ${groupsBean.of(amount)}"',
     "approveInvoice", "camunda:candidateGroups: expression “${groupsBean.of(amount)}”: the method call"),
    ("${dateTime().plusWeeks(1).toDate()}", "${dateTime().plusFortnights(1).toDate()}", "approveInvoice",
     "camunda:dueDate: expression “${dateTime().plusFortnights(1).toDate()}”: the method call"),
    ('camunda:priority=', 'camunda:followUpDate="${dateTime().plusDays(1).toDate(}" camunda:priority=',
     "approveInvoice", "camunda:followUpDate: expression “${dateTime().plusDays(1).toDate(}”: expected a value"),
    ("${amount &gt; 1000 ? 80 : 40}", "${amount &gt; 1000 ? 80}", "approveInvoice",
     "camunda:priority: expression “${amount > 1000 ? 80}”: expected “:” but found the end of the expression"),
])
def test_unsupported_expressions_are_deploy_errors_naming_element_and_expression(session, old, new, element, message):
    assert old in XML
    with pytest.raises(InvalidDefinition) as caught:
        definitions.deploy(session, None, XML.replace(old, new))
    found = [p for p in caught.value.problems if p.element_id == element]
    assert found and message in str(found[0]), caught.value.problems


def test_python_conditions_keep_working_beside_juel(session, user, now):
    _deploy(session, XML.replace("${!approved}", "not approved"))
    case = _start(session, user)
    actions.complete_task(session, user("fiona"), _task(session, case.id, "approveInvoice").id, {"approved": False})
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "completed"


@pytest.mark.parametrize(("condition", "messages"), [
    ("${!approved &amp;&amp; reviewed}",
     ["Unknown property used in expression", "cannot resolve identifier “reviewed”"]),
    ("${approved ? 'no' : 'yes'}", ["[approved_gateway]", "returns the text “yes”, not true or false"]),
])
def test_a_condition_that_cannot_decide_stops_the_case_saying_why(session, user, now, condition, messages):
    own_form = ('<bpmn:extensionElements><camunda:formData><camunda:formField id="approved" label="Approved" '
                'type="boolean" /></camunda:formData></bpmn:extensionElements><bpmn:incoming>to_approve')
    _deploy(session, XML.replace("${!approved}", condition).replace("<bpmn:incoming>to_approve", own_form))
    case = _start(session, user)
    actions.complete_task(session, user("fiona"), _task(session, case.id, "approveInvoice").id, {"approved": False})
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "incident"
    incident = session.scalars(select(Event).where(Event.instance_id == case.id, Event.kind == "incident")).one()
    assert all(message in str(incident.data) for message in messages), incident.data


#: a report a representative files and the clerk checks; a send-back returns it to whoever filed it
SEND_BACK = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    id="Defs_send_back" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="send_back" name="Send back" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_sales_rep" name="Sales representative">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>file_report</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_clerk" name="Comprehensive clerk">
        <bpmn:flowNodeRef>check_report</bpmn:flowNodeRef><bpmn:flowNodeRef>complete</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:extensionElements><camunda:formData>
      <camunda:formField id="title" label="Title" type="string" />
    </camunda:formData></bpmn:extensionElements><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="file_report" name="File the report" camunda:candidateGroups="sales_rep"
        camunda:assignee="${deptflow_completed_by.file_report}">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="report" label="Report" type="string" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>back</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="check_report" name="Check the report" camunda:candidateGroups="clerk">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="report_complete" label="Complete" type="boolean" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="complete" default="back">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>back</bpmn:outgoing><bpmn:outgoing>yes</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>yes</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="file_report" />
    <bpmn:sequenceFlow id="f2" sourceRef="file_report" targetRef="check_report" />
    <bpmn:sequenceFlow id="f3" sourceRef="check_report" targetRef="complete" />
    <bpmn:sequenceFlow id="back" sourceRef="complete" targetRef="file_report" />
    <bpmn:sequenceFlow id="yes" sourceRef="complete" targetRef="end">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">report_complete</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
  </bpmn:process>
</bpmn:definitions>
"""


def _open_task(session, instance_id: int, element_id: str) -> HumanTask:
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.status == "open",
                                                   HumanTask.element_id == element_id)).one()


def test_a_send_back_returns_to_whoever_completed_the_task(session, user, now):
    _deploy(session, SEND_BACK)
    case = actions.start_process(session, user("steve"), "send_back", {"title": "November"})
    session.commit()
    first = _open_task(session, case.id, "file_report")
    assert first.assignee_id is None, "nobody has filed it yet: it waits for the role"
    actions.complete_task(session, user("sara"), first.id, {"report": "Thin"})
    session.commit()
    actions.complete_task(session, user("clara"), _open_task(session, case.id, "check_report").id,
                          {"report_complete": "false"})
    session.commit()
    again = _open_task(session, case.id, "file_report")
    assert again.id != first.id and again.assignee_id == user("sara").id, "back to Sara, who filed it, not Steve"
    assert "deptflow_completed_by" not in str(session.get(ProcessInstance, case.id).data), "private to the case"
    actions.complete_task(session, user("sara"), again.id, {"report": "Complete"})
    session.commit()
    actions.complete_task(session, user("clara"), _open_task(session, case.id, "check_report").id,
                          {"report_complete": "true"})
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "completed"


# --- over HTTP -------------------------------------------------------------------------------------------------


@pytest.fixture
def deployed(app, sqlite_url, workflow_engine, now):
    """The diagram with Camunda's groups, mapped and published in the app's database."""
    engine = make_engine(sqlite_url)
    with workflow_engine.session_factory(engine)() as session:
        admin = session.scalars(select(definitions.User).where(definitions.User.username == "admin")).one()
        groups.map_group(session, admin, "accounting", "finance")
        groups.map_group(session, admin, "sales", "sales_manager")
        _deploy(session, CAMUNDA_GROUPS)
    engine.dispose()


def test_the_invoice_over_http(deployed, login_as):
    steve, fiona, sam = login_as("steve"), login_as("fiona"), login_as("sam")
    started = steve.post("/api/v1/processes/juel_invoice/start",
                         json={"values": {"title": "Hotel Aurora", "amount": 300,
                                          "approverGroups": "accounting,sales"}})
    assert started.status_code == 201, started.json
    listed = fiona.get("/api/v1/tasks").json["available"]["items"]
    task = next(t for t in listed if t["element_id"] == "approveInvoice")
    assert sam.get(f"/api/v1/tasks/{task['id']}").json["candidate_roles"] == ["finance", "sales_manager"]
    detail = fiona.get(f"/api/v1/tasks/{task['id']}").json
    assert detail["due_at"].startswith("2026-12-03T09:00")
    assert [(f["id"], f["type"], f["required"]) for f in detail["form"]] == [("approved", "boolean", True)]
    page = fiona.get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert 'name="approved" value="true"' in page and 'name="approved" value="false"' in page
    refused = fiona.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": {"approved": True, "iban": "DE89"}})
    assert refused.status_code == 422 and "iban" in refused.get_data(as_text=True)
    done = sam.post(f"/api/v1/tasks/{task['id']}/complete", json={"values": {"approved": True}})
    assert done.status_code == 200, done.json
    assert [t["element_id"] for t in done.json["created"]] == ["prepareBankTransfer"]
    transfer = done.json["created"][0]["id"]
    assert fiona.post(f"/tasks/{transfer}/complete", data={}).status_code in (302, 303)
    case = steve.get(f"/api/v1/cases/{started.json['id']}").json
    assert case["status"] == "completed"
