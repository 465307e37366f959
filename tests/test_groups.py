"""Group mapping (issue 14, part 4): a diagram's lanes and ``camunda:candidateGroups`` name groups
(Camunda's ``accounting``); an administrator maps each to a role, or creates the role for it. A diagram
refused for an unmapped group publishes once it is mapped; its tasks go to the mapped role's queue; open
tasks keep their roles when the mapping goes; every change is audited; bad input changes nothing."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from engine import actions, definitions, groups, roles, validation
from engine.db import Event, GroupMapping, HumanTask, Role, TaskCandidate
from engine.errors import InvalidDefinition, InvalidForm, NotAllowed, NotFound

#: Camunda-style: the start event in a lane that is a role, the task naming a Camunda group
INVOICE = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="Defs_invoice" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="invoice_check" name="Invoice check" isExecutable="true">
    <bpmn:laneSet id="LaneSet_1">
      <bpmn:lane id="Lane_sales" name="Sales representative">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
      <bpmn:lane id="Lane_books" name="Bookkeeping">
        <bpmn:flowNodeRef>file_invoice</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Invoice received">
      <bpmn:extensionElements><camunda:formData>
        <camunda:formField id="title" label="Title" type="string" />
      </camunda:formData></bpmn:extensionElements>
      <bpmn:outgoing>f1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="check_invoice" name="Check invoice" camunda:candidateGroups="accounting">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="file_invoice" name="File invoice">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check_invoice" />
    <bpmn:sequenceFlow id="f2" sourceRef="check_invoice" targetRef="file_invoice" />
    <bpmn:sequenceFlow id="f3" sourceRef="file_invoice" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _events(session, kind: str) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def _mapping_problems(problems) -> dict[str, str]:
    """element id → group of the problems an administrator fixes by mapping a group"""
    return {p.element_id: p.group for p in problems if p.kind == "mapping" and p.group}


def _task(session, case_id: int, element_id: str) -> HumanTask:
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == case_id,
                                                   HumanTask.element_id == element_id)).one()


def _queue(session, task_id: int) -> set[str]:
    return set(session.scalars(select(TaskCandidate.role_key).where(TaskCandidate.task_id == task_id)))


# --- engine ------------------------------------------------------------------------------------


def test_an_unmapped_group_refuses_the_diagram_with_a_mapping_problem_per_element(session):
    with pytest.raises(InvalidDefinition) as refused:
        definitions.deploy(session, None, INVOICE)
    assert _mapping_problems(refused.value.problems) == {"check_invoice": "accounting", "file_invoice": "Bookkeeping"}
    report = validation.validate(session, INVOICE).as_dict()
    assert {(p["element_id"], p["group"]) for p in report["problems"] if p["group"]} == {
        ("check_invoice", "accounting"), ("file_invoice", "Bookkeeping")}
    check = validation.check_file(INVOICE, definitions.known_roles(session))
    assert check.verdict == "cannot deploy" and not check.blocks, "only mapping stands in the way"


def test_mapped_groups_publish_and_the_tasks_land_in_the_mapped_roles_queues(session, user):
    admin, steve, fiona, clara = user("admin"), user("steve"), user("fiona"), user("clara")
    groups.map_group(session, admin, "accounting", "finance")
    groups.map_group(session, admin, "bookkeeping", "clerk")  # a lane: case, spaces and _ do not count
    session.commit()
    definition = definitions.deploy(session, user("owen"), INVOICE)
    session.commit()
    assert definition.version == 1

    case = actions.start_process(session, steve, "invoice_check", {"title": "Invoice 4711"})
    session.commit()
    check = _task(session, case.id, "check_invoice")
    assert check.candidate_roles == ["finance"] and _queue(session, check.id) == {"finance"}
    with pytest.raises(NotAllowed):
        actions.claim(session, clara, check.id)
    session.rollback()
    actions.complete_task(session, fiona, check.id, {})
    session.commit()
    filed = _task(session, case.id, "file_invoice")
    assert filed.candidate_roles == ["clerk"] and _queue(session, filed.id) == {"clerk"}

    mapped = [(e.actor_id, e.data["group"], e.data["role"], e.data["before"]) for e in _events(session, "group_mapped")]
    assert mapped == [(admin.id, "accounting", "finance", None), (admin.id, "bookkeeping", "clerk", None)]


def test_unmapping_leaves_open_tasks_alone_and_new_tasks_find_no_role(session, user):
    admin, steve, fiona = user("admin"), user("steve"), user("fiona")
    groups.map_group(session, admin, "accounting", "finance")
    groups.map_group(session, admin, "Bookkeeping", "clerk")
    definitions.deploy(session, None, INVOICE)
    running = actions.start_process(session, steve, "invoice_check", {"title": "Before"})
    session.commit()

    groups.unmap_group(session, admin, "ACCOUNTING")
    session.commit()
    task = _task(session, running.id, "check_invoice")
    assert task.candidate_roles == ["finance"] and _queue(session, task.id) == {"finance"}
    actions.claim(session, fiona, task.id)
    session.commit()

    later = actions.start_process(session, steve, "invoice_check", {"title": "After"})
    session.commit()
    assert _task(session, later.id, "check_invoice").candidate_roles == []
    overview = groups.overview(session)
    assert [(u.process_key, u.source, u.element_id) for u in overview.unmapped["accounting"]] == [
        ("invoice_check", "version 1", "check_invoice")]
    assert [m.mapping.group_id for m in overview.mapped] == ["Bookkeeping"]
    unmapped = _events(session, "group_unmapped")
    assert [(e.actor_id, e.data["group"], e.data["role"]) for e in unmapped] == [(admin.id, "accounting", "finance")]


def test_remapping_changes_new_tasks_only_and_is_audited_with_the_role_before(session, user):
    admin, steve = user("admin"), user("steve")
    groups.map_group(session, admin, "accounting", "finance")
    groups.map_group(session, admin, "Bookkeeping", "clerk")
    definitions.deploy(session, None, INVOICE)
    first = actions.start_process(session, steve, "invoice_check", {"title": "One"})
    groups.map_group(session, admin, "accounting", "general_manager")
    second = actions.start_process(session, steve, "invoice_check", {"title": "Two"})
    session.commit()
    assert _task(session, first.id, "check_invoice").candidate_roles == ["finance"]
    assert _task(session, second.id, "check_invoice").candidate_roles == ["general_manager"]
    assert _events(session, "group_mapped")[-1].data["before"] == "finance"


def test_a_role_made_for_a_group_in_one_step(session, user):
    admin = user("admin")
    mapping = groups.map_group_to_new_role(session, admin, "accounting", "accounting_team", "Accounting team")
    session.commit()
    assert mapping.role_key == "accounting_team" and session.get(Role, "accounting_team").name == "Accounting team"
    assert [e.kind for e in _events(session, "role_created")][-1:] == ["role_created"]
    assert [m.mapping.group_id for m in groups.overview(session).mapped] == ["accounting"]
    uses = roles.role_usage(session, "accounting_team")
    assert uses == ["mapped from group “accounting”"], "a mapped role stays active"


@pytest.mark.parametrize(("group", "role", "field", "message"), [
    ("accounting", "wizards", "role", "no active role “wizards”"),
    ("accounting", "", "role", "Choose a role"),
    ("", "finance", "group", "Name the group"),
    ("   ", "finance", "group", "Name the group"),
    ("x" * 201, "finance", "group", "at most 200"),
    ("acc\nounting", "finance", "group", "control characters"),
    ("finance", "clerk", "group", "is a role already"),
    ("Sales representative", "clerk", "group", "is a role already"),
])
def test_bad_mappings_are_refused_with_nothing_saved(session, user, group, role, field, message):
    with pytest.raises(InvalidForm) as refused:
        groups.map_group(session, user("admin"), group, role)
    assert message in refused.value.errors[field]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(GroupMapping)) == 0
    assert _events(session, "group_mapped") == []


def test_bad_new_roles_and_deactivated_roles_are_refused(session, user):
    admin = user("admin")
    with pytest.raises(InvalidForm) as refused:
        groups.map_group_to_new_role(session, admin, "", "Bad Key", "")
    assert set(refused.value.errors) == {"group", "key", "name"}
    session.rollback()
    with pytest.raises(InvalidForm) as taken:
        groups.map_group_to_new_role(session, admin, "accounting", "finance", "Finance again")
    assert "taken" in taken.value.errors["key"]
    session.rollback()
    roles.create_role(session, admin, "retired", "Retired")
    roles.update_role(session, admin, "retired", name="Retired", permissions=[], manager_role=None, active=False)
    with pytest.raises(InvalidForm) as inactive:
        groups.map_group(session, admin, "accounting", "retired")
    assert "no active role" in inactive.value.errors["role"]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(GroupMapping)) == 0
    assert session.get(Role, "accounting") is None


def test_only_administrators_map_groups(session, user):
    admin = user("admin")
    for username in ("owen", "fiona", "alice"):
        with pytest.raises(NotAllowed):
            groups.map_group(session, user(username), "accounting", "finance")
        with pytest.raises(NotAllowed):
            groups.map_group_to_new_role(session, user(username), "accounting", "accounting_team", "Accounting")
    groups.map_group(session, admin, "accounting", "finance")
    with pytest.raises(NotAllowed):
        groups.unmap_group(session, user("owen"), "accounting")
    with pytest.raises(NotFound):
        groups.unmap_group(session, admin, "sales")


def test_a_new_mapping_parses_a_cached_definition_again(session, user):
    """The definition cache is keyed by the roles *and* the mappings: a mapping changes what the next task gets."""
    plain = definitions.parse_definition(INVOICE, definitions.known_roles(session))[0]
    assert plain.user_tasks["check_invoice"].candidate_roles == []
    mapped_roles = definitions.Roles(definitions.known_roles(session), {"Accounting": "finance"})
    lanes = definitions.Roles(definitions.known_roles(session), {"book keeping": "clerk"})
    assert definitions._fingerprint(mapped_roles) != definitions._fingerprint(definitions.known_roles(session))
    parsed, problems = definitions.parse_definition(INVOICE, mapped_roles)
    assert parsed.user_tasks["check_invoice"].candidate_roles == ["finance"]
    assert _mapping_problems(problems) == {"file_invoice": "Bookkeeping"}
    assert definitions.parse_definition(INVOICE, lanes)[0].user_tasks["file_invoice"].candidate_roles == [], \
        "a lane finds a group ignoring case, spaces and _, not inner letters"


# --- HTTP --------------------------------------------------------------------------------------


def test_the_import_links_to_the_groups_page_and_the_mapped_diagram_publishes(app, login_as):
    admin, owen, fiona = login_as("admin"), login_as("owen"), login_as("fiona")
    upload = {"file": (io.BytesIO(INVOICE.encode()), "invoice.bpmn")}
    imported = admin.post("/modeler/import", data=upload)
    page = imported.get_data(as_text=True)
    assert imported.status_code == 422 and 'href="/admin/groups?group=accounting#map"' in page
    owens = owen.post("/modeler/import", data={"file": (io.BytesIO(INVOICE.encode()), "invoice.bpmn")})
    assert "/admin/groups" not in owens.get_data(as_text=True), "the link is for administrators"
    report = admin.post("/modeler/api/validate", json={"xml": INVOICE}).get_json()
    assert {p["group"] for p in report["problems"] if p["kind"] == "mapping"} == {"accounting", "Bookkeeping"}
    assert 'data-groups-url="/admin/groups"' in admin.get("/modeler/invoice_check/edit?draft=1").get_data(as_text=True)

    listed = admin.get("/admin/groups?group=accounting").get_data(as_text=True)
    assert re.search(r'<tr data-group="accounting" aria-current="true">', listed)
    assert "check_invoice" in listed and "draft #" in listed and 'value="accounting"' in listed

    refused = admin.post("/modeler/api/publish", json={"xml": INVOICE, "acknowledge": True})
    assert refused.status_code == 422
    assert admin.post("/admin/groups", data={"group": "accounting", "role": "finance"}).status_code == 302
    made = admin.post("/admin/groups/role", data={"group": "Bookkeeping", "key": "bookkeeping", "name": "Bookkeeping"})
    assert made.status_code == 302 and made.headers["Location"].endswith("/admin/roles/bookkeeping")
    published = admin.post("/modeler/api/publish", json={"xml": INVOICE, "acknowledge": True})
    assert published.status_code == 200 and published.get_json()["version"] == 1

    steve = login_as("steve")
    assert steve.post("/processes/invoice_check/start", data={"title": "Invoice 4711"}).status_code == 302
    assert "Check invoice" in fiona.get("/").get_data(as_text=True)
    assert "Check invoice" not in login_as("clara").get("/").get_data(as_text=True)

    mapped = admin.get("/admin/groups").get_data(as_text=True)
    assert "Every group the published diagrams and drafts name is a role or mapped." in mapped
    assert '<a href="/admin/roles/finance">Finance</a>' in mapped, "a mapped group's role, by its name"
    assert admin.post("/admin/groups/unmap", data={"group": "accounting"}).status_code == 302
    assert "Check invoice" in fiona.get("/").get_data(as_text=True), "the open task keeps its role"
    assert admin.post("/admin/groups/unmap", data={"group": "accounting"}).status_code == 404


def test_bad_input_over_http_and_non_administrators(app, login_as):
    admin = login_as("admin")
    unknown = admin.post("/admin/groups", data={"group": "accounting", "role": "wizards"})
    assert unknown.status_code == 422 and "There is no active role “wizards”." in unknown.get_data(as_text=True)
    empty = admin.post("/admin/groups", data={"group": "", "role": "finance"})
    assert empty.status_code == 422 and "Name the group" in empty.get_data(as_text=True)
    long = admin.post("/admin/groups", data={"group": "g" * 300, "role": "finance"})
    assert long.status_code == 422 and "at most 200" in long.get_data(as_text=True)
    bad_role = admin.post("/admin/groups/role", data={"group": "accounting", "key": "X", "name": ""})
    assert bad_role.status_code == 422 and "lower-case letters" in bad_role.get_data(as_text=True)
    for username in ("owen", "fiona"):
        client = login_as(username)
        assert client.get("/admin/groups").status_code == 403
        assert client.post("/admin/groups", data={"group": "accounting", "role": "finance"}).status_code == 403
        assert client.post("/admin/groups/role", data={"group": "a", "key": "abc", "name": "A"}).status_code == 403
        assert client.post("/admin/groups/unmap", data={"group": "accounting"}).status_code == 403
    assert "data-group=" not in admin.get("/admin/groups").get_data(as_text=True), "nothing was mapped"
