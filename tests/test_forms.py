"""Form parsing and server-side validation (engine.forms)."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from engine.errors import InvalidForm
from engine.forms import parse_form, validate

TASK = """
<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
               xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="review">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="name" label="Name" type="string">
      <camunda:validation><camunda:constraint name="required" /><camunda:constraint name="minlength" config="2" />
      <camunda:constraint name="maxlength" config="10" /></camunda:validation>
      <camunda:properties><camunda:property id="help" value="Who it is" /></camunda:properties>
    </camunda:formField>
    <camunda:formField id="budget" label="Budget" type="long">
      <camunda:validation><camunda:constraint name="min" config="100" /><camunda:constraint name="max" config="1000" /></camunda:validation>
    </camunda:formField>
    <camunda:formField id="share" label="Share" type="double" />
    <camunda:formField id="ok" label="OK?" type="boolean"><camunda:validation><camunda:constraint name="required" /></camunda:validation></camunda:formField>
    <camunda:formField id="when" label="When" type="date"><camunda:validation><camunda:constraint name="min" config="2020-01-01" /></camunda:validation></camunda:formField>
    <camunda:formField id="pick" label="Pick" type="enum"><camunda:value id="a" name="A" /><camunda:value id="b" name="B" /></camunda:formField>
    <camunda:formField id="fixed" label="Fixed" type="string"><camunda:validation><camunda:constraint name="readonly" /></camunda:validation></camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>
"""


@pytest.fixture
def form():
    parsed, problems = parse_form(etree.fromstring(TASK))
    assert problems == []
    return parsed


def test_parses_fields_with_types_constraints_and_help(form):
    assert [f.id for f in form.fields] == ["name", "budget", "share", "ok", "when", "pick", "fixed"]
    name = form.fields[0]
    assert name.required and name.help == "Who it is" and name.constraints["maxlength"] == "10"
    assert form.fields[5].options == [("a", "A"), ("b", "B")]
    assert form.fields[6].readonly


def test_valid_values_are_converted(form):
    values = validate(form, {"name": "Oak", "budget": "500", "share": "0.25", "ok": "true", "when": "2026-03-01",
                             "pick": "b", "fixed": "ignored"}, {"fixed": "kept"})
    assert values == {"name": "Oak", "budget": 500, "share": 0.25, "ok": True, "when": "2026-03-01", "pick": "b"}


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("name", "", "required"),
        ("name", "x", "at least 2"),
        ("name", "x" * 11, "at most 10"),
        ("budget", "12.5", "whole number"),
        ("budget", "99", "at least 100"),
        ("budget", "1001", "at most 1000"),
        ("share", "lots", "number"),
        ("share", "nan", "number"),
        ("ok", "", "required"),
        ("ok", "maybe", "yes or no"),
        ("when", "03/01/2026", "YYYY-MM-DD"),
        ("when", "2019-12-31", "on or after 2020-01-01"),
        ("pick", "c", "listed options"),
    ],
)
def test_each_constraint_names_the_field(form, field, raw, message):
    good = {"name": "Oak", "budget": "500", "share": "1", "ok": "false", "when": "2026-01-01", "pick": "a"}
    with pytest.raises(InvalidForm) as caught:
        validate(form, {**good, field: raw}, {})
    assert list(caught.value.errors) == [field]
    assert message in caught.value.errors[field]
    assert caught.value.values[field] == raw


def test_all_errors_reported_at_once_and_input_kept(form):
    with pytest.raises(InvalidForm) as caught:
        validate(form, {"name": "", "budget": "abc", "ok": ""}, {})
    assert set(caught.value.errors) == {"name", "budget", "ok"}
    assert caught.value.values["budget"] == "abc"


def test_json_values_are_accepted_typed(form):
    values = validate(form, {"name": "Oak", "budget": 200, "share": 2, "ok": False}, {})
    assert values["budget"] == 200 and values["share"] == 2.0 and values["ok"] is False
    with pytest.raises(InvalidForm):
        validate(form, {"name": "Oak", "budget": True, "ok": True}, {})


def test_duplicate_and_unknown_types_are_problems():
    xml = TASK.replace('id="share" label="Share" type="double"', 'id="name" label="Again" type="double"')
    xml = xml.replace('type="date"', 'type="datetime"')
    _form, problems = parse_form(etree.fromstring(xml))
    messages = [p.message for p in problems]
    assert any("“name” appears twice" in m for m in messages)
    assert any("unsupported type “datetime”" in m for m in messages)
    assert all(p.element_id == "review" for p in problems)


# --- patterns run on RE2 -------------------------------------------------------------------------

PATTERN_TASK = """
<bpmn:userTask xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
               xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="order">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="code" label="Code" type="string">
      <camunda:validation><camunda:constraint name="pattern" config="PATTERN" /></camunda:validation>
    </camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>
"""


def _pattern_form(pattern: str):
    return parse_form(etree.fromstring(PATTERN_TASK.replace("PATTERN", pattern)))


def test_a_catastrophic_pattern_answers_in_linear_time():
    """``([A-Za-z0-9]+\\s?)+`` against 26 letters and a ``!`` blocked Python's re 4.6 s; RE2 is linear."""
    form, problems = _pattern_form(r"([A-Za-z0-9]+\s?)+")
    assert problems == []
    began = time.perf_counter()
    with pytest.raises(InvalidForm) as caught:
        validate(form, {"code": "a" * 26 + "!"}, {})
    assert time.perf_counter() - began < 0.1
    assert caught.value.errors == {"code": "Does not have the expected format."}
    began = time.perf_counter()
    with pytest.raises(InvalidForm):
        validate(form, {"code": "a" * 19_000 + "!"}, {})
    assert time.perf_counter() - began < 0.1
    assert validate(form, {"code": "Plan 2025"}, {}) == {"code": "Plan 2025"}


@pytest.mark.parametrize("pattern", [r"(a)\1", "(", r"(?=a)b", "x" * 1001])
def test_a_pattern_re2_cannot_compile_is_a_problem_naming_element_and_field(pattern):
    form, problems = _pattern_form(pattern)
    [problem] = problems
    assert problem.element_id == "order" and problem.severity == "error"
    assert "“code”" in problem.message and "pattern" in problem.message


def test_a_broken_pattern_published_earlier_refuses_the_value_instead_of_failing():
    form, _problems = _pattern_form("(")
    with pytest.raises(InvalidForm) as caught:
        validate(form, {"code": "x"}, {})
    assert "broken" in caught.value.errors["code"]
