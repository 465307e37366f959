"""Deploying BPMN: versions, and readable problems for broken diagrams."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import definitions
from engine.errors import InvalidDefinition

DATA = Path(__file__).parent / "data"
MINI = (DATA / "mini_approval.bpmn").read_text()


def _problems(session, xml: str) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        definitions.deploy(session, None, xml)
    return [str(p) for p in caught.value.problems]


def test_deploy_creates_versions_and_ignores_unchanged_content(session, user):
    first = definitions.deploy(session, user("owen"), MINI)
    assert (first.process_key, first.version, first.published_by.username) == ("mini_approval", 1, "owen")
    assert definitions.deploy(session, None, MINI).id == first.id
    second = definitions.deploy(session, None, MINI.replace("Approve request", "Approve the request"), note="rename")
    assert second.version == 2 and second.note == "rename"
    assert definitions.latest_definition(session, "mini_approval").id == second.id
    assert first.sha256 != second.sha256 and len(second.sha256) == 64


def test_not_xml_is_reported_with_the_line(session):
    problems = _problems(session, "<bpmn:definitions><oops></bpmn:definitions>")
    assert len(problems) == 1 and "not well-formed XML" in problems[0] and "line 1" in problems[0]


def test_entities_are_refused_before_parsing(session):
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            "<lolz>&lol2;</lolz>")
    assert "DOCTYPE" in _problems(session, bomb)[0]
    external = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    assert "DOCTYPE" in _problems(session, external)[0]


def test_role_problems_name_the_element(session):
    broken = MINI.replace('name="Marketing manager"', 'name="Nobody in particular"')
    problems = _problems(session, broken)
    assert any("[approve_request]" in p and "no role" in p for p in problems)
    unknown = MINI.replace('id="approve_request" name=', 'id="approve_request" camunda:candidateGroups="wizards" name=')
    assert any("[approve_request]" in p and "“wizards” is not a known role" in p for p in _problems(session, unknown))


def test_gateway_without_condition_or_default_is_an_error(session):
    broken = MINI.replace(' default="f3"', "")
    assert any("[f3]" in p and "condition" in p for p in _problems(session, broken))


def test_condition_refused_by_the_sandbox(session):
    broken = MINI.replace("decision == 'approve'", "decision.__class__ == 'x'")
    assert any("[f4]" in p and "refused" in p for p in _problems(session, broken))


def test_form_problems_and_id_clashes(session):
    broken = MINI.replace('id="amount" label="Amount" type="long"', 'id="title" label="Amount" type="money"')
    problems = _problems(session, broken)
    assert any("[start]" in p and "“title” appears twice" in p for p in problems)
    clash = MINI.replace('<camunda:value id="reject"', '<camunda:value id="decided"')
    assert any("[approve_request]" in p and "“decided” is also the id of a BPMN element" in p
               for p in _problems(session, clash))


def test_spiffworkflow_structural_errors_are_reported(session):
    broken = MINI.replace('<bpmn:sequenceFlow id="f2" sourceRef="approve_request" targetRef="decided" />',
                          '<bpmn:sequenceFlow id="f2" sourceRef="approve_request" targetRef="nowhere" />')
    problems = _problems(session, broken)
    assert problems and all(isinstance(p, str) for p in problems)


def test_no_executable_process(session):
    assert "no executable" in _problems(session, MINI.replace('isExecutable="true"', 'isExecutable="false"'))[0]


def test_due_date_must_be_iso(session):
    problems = _problems(session, MINI.replace('camunda:dueDate="P2D"', 'camunda:dueDate="next week"'))
    assert any("[approve_request]" in p and "ISO 8601" in p for p in problems)
