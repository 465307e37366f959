"""BPMN that process owners bring from other tools: any valid id, documentation elements, several pools,
plain and manual tasks, Java delegates refused by name, empty strings kept — through the engine and HTTP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import actions, definitions, forms
from engine.db import HumanTask, Process, ProcessInstance
from engine.errors import InvalidDefinition
from workflows.catalogue import ROLES

DATA = Path(__file__).parent / "data"
ORDER = (DATA / "order-intake.bpmn").read_text()
TWO_POOLS = (DATA / "two_pools.bpmn").read_text()
ROLE_NAMES = {r.key: r.name for r in ROLES}
ROW = re.compile(r'<tr data-task-id="(\d+)" data-element-id="([^"]+)" data-instance-id="(\d+)">')


def _problems(xml: str) -> list[str]:
    _parsed, problems = definitions.parse_definitions(xml, ROLE_NAMES)
    return [str(p) for p in problems]


def _publish(app, login_as, xml: str) -> dict:
    response = login_as("owen").post("/modeler/api/publish", data=json.dumps({"xml": xml, "acknowledge": True}),
                                      content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()


def _inbox(client, instance_id: int) -> dict[str, int]:
    page = client.get("/").get_data(as_text=True)
    return {element: int(task) for task, element, instance in ROW.findall(page) if int(instance) == instance_id}


def _status(client, instance_id: int) -> str:
    page = client.get(f"/instances/{instance_id}").get_data(as_text=True)
    return re.search(r'id="instance-status">(\w+)<', page).group(1)


# --- deploying what is valid BPMN --------------------------------------------------------------


def test_documentation_elements_and_hyphenated_ids_deploy(session):
    published = definitions.deploy(session, None, ORDER)
    assert (published.process_key, published.bpmn_process_id, published.version) == ("order-intake.v2",) * 2 + (1,)
    assert _problems(ORDER) == []


def test_every_problem_of_a_file_is_reported_at_once_with_its_element():
    broken = (ORDER.replace('<bpmn:task id="file-order"', '<bpmn:serviceTask camunda:class="com.acme.FileOrder" '
                            'id="file-order"').replace("</bpmn:task>", "</bpmn:serviceTask>")
              .replace('<bpmn:scriptTask id="note-empty"', '<bpmn:sendTask camunda:delegateExpression="${mailer}" '
                       'id="note-empty"').replace("</bpmn:scriptTask>", "</bpmn:sendTask>")
              .replace('name="Marketing manager"', 'name="Back office"'))
    problems = _problems(broken)
    assert any("[file-order]" in p and "camunda:class “com.acme.FileOrder”" in p and "a script task" in p
               for p in problems), problems
    assert any("[note-empty]" in p and "camunda:delegateExpression" in p for p in problems), problems
    assert any("[sign.paper-copy]" in p and "nobody could do it" in p and "Back office" in p for p in problems)


def test_a_service_task_with_a_java_class_is_refused_naming_it(session):
    java = ORDER.replace('<bpmn:task id="file-order" name="File the order">',
                         '<bpmn:serviceTask id="file-order" name="File the order" camunda:class="com.acme.File">'
                         ).replace("</bpmn:task>", "</bpmn:serviceTask>")
    with pytest.raises(InvalidDefinition) as caught:
        definitions.deploy(session, None, java)
    assert [p.element_id for p in caught.value.problems] == ["file-order"]
    assert "map it to an external task topic" in caught.value.problems[0].message
    assert "or make it a script task" in caught.value.problems[0].message
    assert (caught.value.problems[0].kind, caught.value.problems[0].delegate) == ("mapping", "com.acme.File")
    assert session.get(Process, "order-intake.v2") is None


def test_an_external_task_needs_a_topic_and_a_manual_task_without_a_role_is_an_error():
    external = ORDER.replace('<bpmn:task id="file-order" name="File the order">',
                             '<bpmn:serviceTask id="file-order" name="File" camunda:type="external" camunda:topic="f">'
                             ).replace("</bpmn:task>", "</bpmn:serviceTask>")
    assert not any("[file-order]" in p for p in _problems(external))
    untopical = external.replace(' camunda:topic="f"', "")
    assert any(p.startswith("error: [file-order]") and "camunda:topic" in p for p in _problems(untopical))
    orphan = ORDER.replace("<bpmn:flowNodeRef>sign.paper-copy</bpmn:flowNodeRef>", "")
    assert any(p.startswith("error: [sign.paper-copy]") and "manual task has no role" in p
               for p in _problems(orphan))


def test_ids_that_cannot_be_keys_are_refused():
    too_long = ORDER.replace('"order-intake.v2"', '"' + "o" * 101 + '"')
    assert any("cannot be a process key" in p for p in _problems(too_long))
    assert definitions.KEY_PATTERN.match("Process_1a-b.c_2") and not definitions.KEY_PATTERN.match("-x")


# --- several processes per file ----------------------------------------------------------------


def test_a_collaboration_deploys_each_executable_pool_on_its_own(session):
    published = definitions.deploy_file(session, None, TWO_POOLS)
    assert [(d.process_key, d.version) for d in published] == [("sales-intake", 1), ("marketing.review", 1)]
    assert session.get(Process, "customer") is None
    assert any("[customer]" in p and p.startswith("note:") and "skipped" in p for p in _problems(TWO_POOLS))
    again = definitions.deploy_file(session, None, TWO_POOLS.replace("Check the lead", "Check the new lead"))
    assert [(d.process_key, d.version) for d in again] == [("sales-intake", 2), ("marketing.review", 2)]
    assert session.get(Process, "marketing.review").starter_roles == ["marketing_manager"]


def test_both_pools_start_and_run_over_http(app, login_as):
    body = _publish(app, login_as, TWO_POOLS)
    assert body["processes"] == [{"process_key": "sales-intake", "version": 1},
                                 {"process_key": "marketing.review", "version": 1}]
    for starter, key, element in (("steve", "sales-intake", "s-check"), ("mark", "marketing.review", "m-review")):
        client = login_as(starter)
        assert client.get(f"/processes/{key}/start").status_code == 200
        started = client.post(f"/processes/{key}/start", data={})
        assert started.status_code == 302, started.get_data(as_text=True)[:2000]
        instance_id = int(started.location.rsplit("/", 1)[1])
        task_id = _inbox(client, instance_id)[element]
        assert client.post(f"/tasks/{task_id}/claim").status_code == 302
        assert client.post(f"/tasks/{task_id}/complete", data={}).status_code == 302
        assert _status(client, instance_id) == "completed"


# --- plain and manual tasks, empty strings -----------------------------------------------------


def test_plain_task_passes_manual_task_is_done_from_the_inbox_and_empty_comment_stays_empty(app, login_as):
    assert _publish(app, login_as, ORDER)["process_key"] == "order-intake.v2"
    steve, mark = login_as("steve"), login_as("mark")
    started = steve.post("/processes/order-intake.v2/start", data={"title": "Order 7", "comment": ""})
    assert started.status_code == 302, started.get_data(as_text=True)[:2000]
    instance_id = int(started.location.rsplit("/", 1)[1])
    assert _inbox(steve, instance_id) == {}  # the plain task passed; nothing waits for the starter
    tasks = _inbox(mark, instance_id)
    assert list(tasks) == ["sign.paper-copy"]
    assert mark.post(f"/tasks/{tasks['sign.paper-copy']}/claim").status_code == 302
    page = mark.get(f"/tasks/{tasks['sign.paper-copy']}").get_data(as_text=True)
    form = page.split("/complete", 1)[1].split("</form>", 1)[0]
    assert ">Done<" in form and set(re.findall(r'name="(\w+)"', form)) <= {"csrf_token"}  # a Done button, no form
    assert mark.post(f"/tasks/{tasks['sign.paper-copy']}/complete", data={}).status_code == 302
    assert _status(steve, instance_id) == "completed"
    with app.app_context():
        from web.database import db

        instance = db().get(ProcessInstance, instance_id)
        assert instance.data["comment"] == "" and instance.data["comment_was_empty"] is True


def test_engine_keeps_an_empty_optional_string(session, user):
    definitions.deploy(session, None, ORDER)
    session.get(Process, "order-intake.v2").starter_roles = ["sales_rep"]
    case = actions.start_process(session, user("steve"), "order-intake.v2", {"title": "Order 8"})
    assert case.data["comment"] == ""
    open_tasks = session.scalars(select(HumanTask.element_id).where(HumanTask.instance_id == case.id)).all()
    assert open_tasks == ["sign.paper-copy"]


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("string", "", ""), ("string", "   ", ""), ("string", None, ""), ("long", "", None), ("date", "", None),
    ("boolean", "", False), ("string", " kept ", " kept "),
])
def test_empty_values_keep_their_type(kind, raw, expected):
    form = forms.Form([forms.FormField("x", "X", kind)])
    assert forms.validate(form, {} if raw is None else {"x": raw}, {}) == {"x": expected}
