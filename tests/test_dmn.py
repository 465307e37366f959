"""DMN decision tables (issue 16): hit policies, FEEL unary tests, a decision requirement graph, deploying and
versioning ``.dmn`` files over the CLI and HTTP, and business rule tasks that evaluate them in a running case."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine import actions, decisions, definitions, feel
from engine.db import DecisionDefinition, Event, HumanTask, Process, ProcessInstance
from engine.errors import InvalidDefinition, NotFound, ScriptError
from web.cli import main

DATA = Path(__file__).parent / "data" / "dmn"  # not beside the diagrams the differential test runs
DMN = (DATA / "expense_decisions.dmn").read_text()
BPMN = (DATA / "expense_approval.bpmn").read_text()
DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"


def table(hit_policy: str, rules: list[tuple[str, str]], *, aggregation: str = "", output_values: str = "",
          key: str = "pick", input_expression: str = "amount") -> str:
    """A one-input, one-output decision table: (input entry, output entry) per rule."""
    rows = "".join(f'<rule id="r{i}"><inputEntry id="i{i}"><text>{entry}</text></inputEntry>'
                   f'<outputEntry id="o{i}"><text>{output}</text></outputEntry></rule>'
                   for i, (entry, output) in enumerate(rules, 1))
    values = f'<outputValues id="ov"><text>{output_values}</text></outputValues>' if output_values else ""
    aggregate = f' aggregation="{aggregation}"' if aggregation else ""
    return (f'<definitions xmlns="{DMN_NS}" id="d_{key}" name="Test" namespace="http://camunda.org/schema/1.0/dmn">'
            f'<decision id="{key}" name="Pick"><decisionTable id="t_{key}" hitPolicy="{hit_policy}"{aggregate}>'
            f'<input id="in1" label="Amount"><inputExpression id="ie1" typeRef="double"><text>{input_expression}'
            f'</text></inputExpression></input><output id="out1" label="Result" name="result" typeRef="string">'
            f'{values}</output>{rows}</decisionTable></decision></definitions>')


def decide(xml: str, data: dict, key: str = "pick") -> list[dict]:
    return decisions.evaluate(decisions.Decisions([(key, 1, xml)]), key, data)


RULES = [("&lt; 100", '"small"'), ("[50..500]", '"medium"'), ("&gt;= 400", '"large"')]


# --- FEEL unary tests ---------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "value", "expected"), [
    ('"Travel Expenses"', "Travel Expenses", True),
    ('"Travel Expenses"', "Misc", False),
    ("&lt;= 250".replace("&lt;", "<"), 250, True),
    ("< 250", 250, False),
    ("> 1000", 1000.5, True),
    ("> 1000", None, False),
    ("[250..1000]", 250, True),
    ("[250..1000]", 1000, True),
    ("]250..1000[", 250, False),
    ("(250..1000)", 999, True),
    ("[250..1000)", 1000, False),
    ("-", "anything", True),
    ("", None, True),
    ('"budget", "exceptional"', "exceptional", True),
    ('"budget", "exceptional"', "day-to-day expense", False),
    ('not("Misc", "Travel Expenses")', "Software", True),
    ('not("Misc", "Travel Expenses")', "Misc", False),
    ("true", True, True),
    ("null", None, True),
    ("!= 3", 4, True),
    ('"a, b"', "a, b", True),
    ("< limit", 5, True),
    ("> 10", "text", False),
])
def test_feel_unary_tests(entry, value, expected):
    tests = feel.unary_tests(entry)
    assert feel.matches(tests, value, lambda text: decisions.sandbox.evaluate(text, {"limit": 6})) is expected


def test_feel_values_are_expressions_for_the_sandbox_not_evaluated_here():
    [test] = feel.unary_tests('[low..high * 2]')
    assert test.op == "range" and test.operands == ("low", "high * 2")
    assert feel.expression('x == null or "null" == y') == 'x == None or "null" == y'
    with pytest.raises(feel.FeelError, match="empty item"):
        feel.unary_tests('"a",,"b"')


# --- hit policies -------------------------------------------------------------------------------

def test_unique_gives_the_one_rule_that_matches_and_refuses_two():
    assert decide(table("UNIQUE", RULES), {"amount": 20}) == [{"result": "small"}]
    assert decide(table("UNIQUE", RULES), {"amount": 10_000}) == [{"result": "large"}]
    assert decide(table("UNIQUE", RULES), {"amount": -1.5}) == [{"result": "small"}]
    with pytest.raises(ScriptError, match="hit policy UNIQUE but rules 1, 2 match"):
        decide(table("UNIQUE", RULES), {"amount": 60})


def test_first_gives_the_first_rule_that_matches():
    assert decide(table("FIRST", RULES), {"amount": 60}) == [{"result": "small"}]
    assert decide(table("FIRST", RULES), {"amount": 450}) == [{"result": "medium"}]


def test_any_needs_the_rules_that_match_to_agree():
    agreeing = [("&lt; 100", '"yes"'), ("&lt; 50", '"yes"')]
    assert decide(table("ANY", agreeing), {"amount": 10}) == [{"result": "yes"}]
    with pytest.raises(ScriptError, match="hit policy ANY"):
        decide(table("ANY", RULES), {"amount": 60})


def test_priority_and_output_order_follow_the_outputs_allowed_values():
    ordered = '"large","medium","small"'
    assert decide(table("PRIORITY", RULES, output_values=ordered), {"amount": 60}) == [{"result": "medium"}]
    assert decide(table("OUTPUT ORDER", RULES, output_values=ordered), {"amount": 450}) == [
        {"result": "large"}, {"result": "medium"}]
    assert decide(table("RULE ORDER", RULES), {"amount": 450}) == [{"result": "medium"}, {"result": "large"}]


def test_collect_without_aggregation_gives_every_rule_that_matches():
    assert decide(table("COLLECT", RULES), {"amount": 450}) == [{"result": "medium"}, {"result": "large"}]
    assert decide(table("COLLECT", RULES), {"amount": None}) == []


@pytest.mark.parametrize(("aggregation", "amount", "expected"), [
    ("SUM", 60, [{"result": 13}]), ("SUM", 450, [{"result": 300}]), ("SUM", 5000, [{"result": 200}]),
    ("COUNT", 60, [{"result": 2}]), ("COUNT", 5000, [{"result": 1}]), ("COUNT", None, [{"result": 0}]),
    ("MIN", 60, [{"result": 3}]), ("MAX", 60, [{"result": 10}]), ("SUM", None, []),
])
def test_collect_aggregates(aggregation, amount, expected):
    fees = [("&lt; 100", "10"), ("[50..500]", "amount // 20 if amount &lt; 400 else 100"), ("&gt;= 400", "200")]
    assert decide(table("COLLECT", fees, aggregation=aggregation), {"amount": amount}) == expected


def test_expressions_run_in_the_sandbox():
    evil = table("FIRST", [("-", "().__class__")])
    problems = decisions.check(evil)[1]
    assert problems and "rule 1 output" in problems[0].message and problems[0].element_id == "pick"
    with pytest.raises(InvalidDefinition):
        decisions.read_decisions("<!DOCTYPE x><definitions/>")


# --- the decision requirement graph -------------------------------------------------------------

@pytest.mark.parametrize(("amount", "category", "approvers"), [
    (300, "Travel Expenses", ["finance", "sales_manager"]),
    (100, "Misc", ["finance", "sales_manager"]),
    (300, "Misc", ["general_manager"]),
    (5000, "Misc", ["general_manager"]),
    (10, "Software License Costs", ["general_manager"]),
])
def test_a_decision_evaluates_the_decisions_it_requires_first(amount, category, approvers):
    results = decide(DMN, {"amount": amount, "category": category}, "expense-approver")
    assert [row["role"] for row in results] == approvers


def test_a_drg_file_reads_as_one_unit_with_every_decision_by_key():
    read = decisions.read_decisions(DMN)
    assert read.problems == [] and list(read.decisions) == ["expense-classification", "expense-approver"]
    assert read.decisions["expense-approver"].required == [read.decisions["expense-classification"]]
    broken = DMN.replace('href="#expense-classification"', 'href="#nowhere"')
    assert "required decision “nowhere” is not in the file" in str(decisions.check(broken)[1])


def test_table_parts_without_ids_are_read_as_camunda_reads_them():
    import re

    bare = re.sub(r'<(rule|inputEntry|outputEntry) id="[^"]+"', r"<\1", table("RULE ORDER", RULES))
    assert "<inputEntry><text>" in bare and decisions.check(bare)[1] == []
    assert decide(bare, {"amount": 450}) == [{"result": "medium"}, {"result": "large"}]


def test_what_is_not_a_decision_table_is_refused_with_the_decision_id():
    problems = decisions.check(table("SOMETIMES", RULES))[1]
    assert problems[0].element_id == "pick" and "hit policy “SOMETIMES”" in problems[0].message
    problems = decisions.check(table("FIRST", RULES, aggregation="SUM"))[1]
    assert "aggregation “SUM” needs hit policy COLLECT" in problems[0].message
    problems = decisions.check(table("PRIORITY", RULES))[1]
    assert "orders by the outputs' allowed values" in problems[0].message


# --- deploying and versioning -------------------------------------------------------------------

def test_a_dmn_file_deploys_each_decision_as_its_next_version(session, user):
    first = decisions.deploy_decisions(session, user("admin"), DMN, note="first")
    assert [(d.decision_key, d.version) for d in first] == [("expense-classification", 1), ("expense-approver", 1)]
    assert decisions.deploy_decisions(session, None, DMN) == first  # unchanged: no new version
    changed = DMN.replace('"sales_manager"', '"general_manager"')
    second = decisions.deploy_decisions(session, None, changed)
    assert [(d.decision_key, d.version) for d in second] == [("expense-classification", 2), ("expense-approver", 2)]
    session.commit()
    assert decisions.published(session, "expense-approver").xml == changed
    assert decisions.published(session, "expense-approver", 1).xml == DMN
    assert [d.version for d in decisions.versions_of(session, "expense-classification")] == [2, 1]
    assert [(r.key, r.latest.version, r.versions) for r in decisions.catalogue(session)] == [
        ("expense-approver", 2, 2), ("expense-classification", 2, 2)]
    published = session.scalars(select(Event).where(Event.kind == "definition_published",
                                                    Event.element_id == "expense-approver").order_by(Event.id)).all()
    assert [e.data["version"] for e in published] == [1, 2]
    with pytest.raises(NotFound):
        decisions.versions_of(session, "nothing")


def test_a_broken_dmn_file_publishes_nothing(session):
    with pytest.raises(InvalidDefinition) as refused:
        decisions.deploy_decisions(session, None, DMN.replace("[250..1000]", "[250..1000 ] ]"))
    assert refused.value.problems[0].element_id == "expense-classification"
    assert session.scalars(select(DecisionDefinition)).all() == []


def test_a_business_rule_task_calling_a_decision_not_published_is_a_deploy_error(session):
    with pytest.raises(InvalidDefinition) as refused:
        definitions.deploy(session, None, BPMN)
    assert [(p.element_id, p.message) for p in refused.value.problems] == [
        ("classify", "business rule task calls decision “expense-classification”, which is not published: deploy "
                     "its .dmn file first"),
        ("assign_approver", "business rule task calls decision “expense-approver”, which is not published: deploy "
                            "its .dmn file first")]
    pinned = BPMN.replace('camunda:decisionRef="expense-approver"',
                          'camunda:decisionRef="expense-approver" camunda:decisionRefBinding="version" '
                          'camunda:decisionRefVersion="2"')
    decisions.deploy_decisions(session, None, DMN)
    with pytest.raises(InvalidDefinition, match="calls version 2 of decision “expense-approver”"):
        definitions.deploy(session, None, pinned)
    wrong = BPMN.replace('camunda:mapDecisionResult="singleEntry"', 'camunda:mapDecisionResult="firstEntry"')
    with pytest.raises(InvalidDefinition, match="mapDecisionResult “firstEntry” is not one of"):
        definitions.deploy(session, None, wrong)


# --- business rule tasks in a running case ------------------------------------------------------

def _deploy(session, dmn: str = DMN) -> None:
    decisions.deploy_decisions(session, None, dmn)
    definitions.deploy(session, None, BPMN)
    session.get(Process, "expense_approval").starter_roles = ["sales_rep"]
    session.commit()


def _open_task(session, instance_id: int) -> HumanTask:
    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id,
                                                   HumanTask.status == "open")).one()


def test_a_case_evaluates_its_decisions_and_goes_on(session, user):
    _deploy(session)
    case = actions.start_process(session, user("steve"), "expense_approval",
                                 {"title": "Trip to Lyon", "amount": 300, "category": "Travel Expenses"})
    session.commit()
    instance = session.get(ProcessInstance, case.id)
    assert instance.data["classification"] == "day-to-day expense"
    assert instance.data["approvers"] == ["finance", "sales_manager"]
    task = _open_task(session, case.id)
    assert task.element_id == "approve" and task.candidate_roles == ["finance"]
    actions.complete_task(session, user("fiona"), task.id, {"approved": True})
    session.commit()
    assert session.get(ProcessInstance, case.id).status == "completed"


def test_a_new_version_of_a_decision_reaches_new_cases(session, user):
    _deploy(session)
    first = actions.start_process(session, user("steve"), "expense_approval",
                                  {"title": "Licence", "amount": 300, "category": "Misc"})
    decisions.deploy_decisions(session, None, DMN.replace('"general_manager"', '"finance"'))
    session.commit()
    second = actions.start_process(session, user("steve"), "expense_approval",
                                   {"title": "Licence", "amount": 300, "category": "Misc"})
    session.commit()
    assert session.get(ProcessInstance, first.id).data["approvers"] == ["general_manager"]
    assert session.get(ProcessInstance, second.id).data["approvers"] == ["finance"]


def test_a_decision_that_fails_stops_the_case_with_the_reason(session, user):
    _deploy(session, DMN.replace('<inputEntry id="UnaryTests_7"><text>-</text>',
                                 '<inputEntry id="UnaryTests_7"><text>&gt;= 0</text>')
            .replace("[250..1000]", "[0..1000]").replace('<inputEntry id="UnaryTests_4"><text>"Misc"',
                                                         '<inputEntry id="UnaryTests_4"><text>-'))
    case = actions.start_process(session, user("steve"), "expense_approval",
                                 {"title": "Trip", "amount": 300, "category": "Travel Expenses"})
    session.commit()
    instance = session.get(ProcessInstance, case.id)
    assert instance.status == "incident"
    [incident] = session.scalars(select(Event).where(Event.instance_id == case.id, Event.kind == "incident")).all()
    assert "hit policy UNIQUE but rules 2, 4 match" in str(incident.data)


# --- the CLI ------------------------------------------------------------------------------------

@pytest.fixture
def cli(sqlite_url, monkeypatch):
    monkeypatch.setenv("DEPTFLOW_DATABASE_URL", sqlite_url)
    return lambda *args: CliRunner().invoke(main, list(map(str, args)))


def test_deptflow_deploy_and_check_a_dmn_file(cli, tmp_path):
    result = cli("check", DATA / "expense_approval.bpmn")
    assert result.exit_code == 1 and "blocks: [classify] business rule task calls decision" in result.output
    result = cli("check", DATA / "expense_approval.bpmn", DATA / "expense_decisions.dmn")
    assert result.exit_code == 0, result.output
    assert "runs as is: expense-classification (Expense classification), expense-approver (Expense approver)" \
        in result.output
    result = cli("deploy", DATA / "expense_decisions.dmn")
    assert result.exit_code == 0, result.output
    assert "expense-classification: version 1" in result.output and "expense-approver: version 1" in result.output
    result = cli("deploy", DATA / "expense_approval.bpmn")
    assert result.exit_code == 0 and "expense_approval: version 1" in result.output, result.output
    broken = tmp_path / "broken.dmn"
    broken.write_text(table("FIRST", [("&lt; 1", "import os")]))
    result = cli("deploy", broken)
    assert result.exit_code == 1 and "not deployed" in result.output and "[pick]" in result.output, result.output
    assert cli("check", broken).exit_code == 1


# --- over HTTP ----------------------------------------------------------------------------------

def test_importing_a_dmn_file_in_the_modeler_publishes_its_decisions(login_as):
    owner = login_as("owen")
    page = owner.get("/modeler/decisions")
    assert page.status_code == 200 and b"No decision is published yet." in page.data
    response = owner.post("/modeler/import", data={"file": (io.BytesIO(DMN.encode()),
                                                            "expense_decisions.dmn")},
                          content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"].endswith("/modeler/decisions")
    page = owner.get("/modeler/decisions").get_data(as_text=True)
    assert "Published expense_decisions.dmn: expense-classification version 1, expense-approver version 1." in page
    assert 'data-decision="expense-approver"' in page and 'data-decision="expense-classification"' in page

    editor = owner.get("/modeler/decisions/expense-approver").get_data(as_text=True)
    assert 'data-xml-url="/modeler/decisions/expense-approver/v1.dmn"' in editor
    download = owner.get("/modeler/decisions/expense-approver/v1.dmn")
    assert download.status_code == 200 and download.get_data(as_text=True) == DMN
    assert "expense-approver.v1.dmn" in download.headers["Content-Disposition"]
    assert owner.get("/modeler/decisions/expense-approver/v7.dmn").status_code == 404
    assert owner.get("/modeler/decisions/nothing").status_code == 404

    # the process that calls them can now be imported and published
    response = owner.post("/modeler/api/publish", json={"xml": BPMN, "acknowledge": True})
    assert response.status_code == 200, response.json
    assert response.json["process_key"] == "expense_approval"


def test_a_broken_dmn_file_is_refused_with_its_problems(login_as):
    owner = login_as("owen")
    broken = table("UNIQUE", [("[1..", '"x"')])
    response = owner.post("/modeler/decisions/import", data={"file": (io.BytesIO(broken.encode()),
                                                                      "broken.dmn")},
                          content_type="multipart/form-data")
    assert response.status_code == 422
    assert "The file was not published" in response.get_data(as_text=True)
    assert owner.get("/modeler/decisions").get_data(as_text=True).count("data-decision=") == 0


def test_the_decision_editor_publishes_the_next_version_over_the_api(login_as):
    owner = login_as("owen")
    assert owner.get("/modeler/decisions/new").status_code == 200
    template = owner.get("/modeler/decisions/template.dmn").get_data(as_text=True)
    assert decisions.check(template)[1] == []
    first = owner.post("/modeler/api/decisions", json={"xml": template, "note": "new"})
    assert first.status_code == 200 and first.json["decisions"][0]["version"] == 1
    second = owner.post("/modeler/api/decisions", json={"xml": template.replace('"yes"', '"no"'),
                                                        "decision_key": "decision"})
    assert [d["version"] for d in second.json["decisions"]] == [2]
    renamed = owner.post("/modeler/api/decisions", json={"xml": template.replace('id="decision"', 'id="other"'),
                                                         "decision_key": "decision"})
    assert renamed.status_code == 422
    assert "no longer holds decision “decision”" in renamed.json["problems"][0]["message"]
    broken = owner.post("/modeler/api/decisions", json={"xml": table("UNIQUE", [("-", "import os")])})
    assert broken.status_code == 422 and broken.json["problems"][0]["element_id"] == "pick"


def test_only_process_owners_see_the_decisions(login_as):
    employee = login_as("cathy")
    assert employee.get("/modeler/decisions").status_code == 403
    assert employee.post("/modeler/api/decisions", json={"xml": DMN}).status_code == 403


# --- Camunda's invoice example ------------------------------------------------------------------

@pytest.mark.parametrize(("amount", "category", "groups"), [
    (300, "Travel Expenses", ["accounting", "sales"]),  # as Camunda's InvoiceTestCase expects
    (100, "Misc", ["accounting", "sales"]),
    (500, "Misc", ["management"]),
    (1500, "Misc", ["management"]),
    (10, "Software License Costs", ["management"]),
])
def test_camundas_invoice_decisions_assign_the_approver_groups(amount, category, groups, corpus):
    invoice = corpus / "camunda" / "camunda-bpm-platform" / "examples" / "invoice" / "src" / "main" / "resources"
    xml = (invoice / "invoiceBusinessDecisions.dmn").read_text()
    results = decisions.evaluate(decisions.Decisions([("invoice-assign-approver", 1, xml)]),
                                 "invoice-assign-approver", {"amount": amount, "invoiceCategory": category})
    assert decisions.map_result(results, "collectEntries") == groups
