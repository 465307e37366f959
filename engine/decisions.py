"""DMN decision tables: published and versioned like diagrams, evaluated by business rule tasks.

A ``.dmn`` file is read with SpiffWorkflow's :class:`DMNParser` (one decision table per decision);
every decision of the file is published as the next version of its key (its DMN id), each row
holding the whole file, so a decision that requires others (a decision requirement graph) is
evaluated with them as they were published together. Input entries are FEEL unary tests
(:mod:`engine.feel`); every value they compare with, every input and output expression is
evaluated by the workflow's script engine, i.e. in deptflow's sandbox.

A ``bpmn:businessRuleTask`` with ``camunda:decisionRef`` evaluates the latest published version of
that decision (``camunda:decisionRefBinding="version"`` with ``camunda:decisionRefVersion``: that
version) and stores the result in ``camunda:resultVariable`` as ``camunda:mapDecisionResult`` says
(``resultList`` by default, as in Camunda 7). Without a result variable the outputs of the result are
merged into the case data, as SpiffWorkflow does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.parser.DMNParser import DMNParser
from SpiffWorkflow.dmn.specs import BusinessRuleTaskMixin
from SpiffWorkflow.dmn.specs.model import Decision
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, feel, sandbox
from . import definitions as defs
from .clock import utcnow
from .db import DecisionDefinition, User
from .errors import InvalidDefinition, NotFound, Problem, ScriptError
from .forms import CAMUNDA_NS
from .vocabulary import EventKind

DMN_NAMESPACES = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "https://www.omg.org/spec/DMN/20230324/MODEL/",
)
HIT_POLICIES = ("UNIQUE", "FIRST", "ANY", "PRIORITY", "RULE ORDER", "OUTPUT ORDER", "COLLECT")
AGGREGATIONS = {"SUM": sum, "COUNT": len, "MIN": min, "MAX": max}
MAPPINGS = ("resultList", "singleEntry", "singleResult", "collectEntries")


def is_dmn(root: etree._Element) -> bool:
    """Whether ``root`` is the ``definitions`` element of a DMN file (1.1 to 1.5)."""
    return isinstance(root.tag, str) and etree.QName(root).localname == "definitions" \
        and etree.QName(root).namespace in DMN_NAMESPACES


def is_dmn_file(data: str | bytes) -> bool:
    """Whether ``data`` reads as a DMN file (a file that is not XML at all is not)."""
    try:
        return is_dmn(defs.parse_xml(data))
    except InvalidDefinition:
        return False


# --- reading a DMN file ---------------------------------------------------------------------


@dataclass
class _Rule:
    rule_id: str
    row: int
    tests: list[tuple[feel.Test, ...]]
    outputs: list[str | None]


class DecisionEngine(DMNEngine):
    """SpiffWorkflow's DMN engine for one decision, with the hit policies, aggregations and FEEL unary
    tests of Camunda 7, and the decisions it requires (from the same file) evaluated first."""

    def __init__(self, decision: Decision, aggregation: str | None, priorities: dict[str, list[str]]):
        super().__init__(decision.decisionTables[0])
        self.decision = decision
        self.key: str = decision.id
        self.aggregation = aggregation
        #: output name → its allowed values (expressions), which order PRIORITY and OUTPUT ORDER
        self.priorities = priorities
        self.required: list[DecisionEngine] = []
        table = self.decision_table
        self.inputs = [feel.expression(i.expression or "") for i in table.inputs]
        self.output_names = [o.name or o.label or o.id for o in table.outputs]
        self.rules = [
            _Rule(rule.id, rule.row_number, [feel.unary_tests(e.text) for e in rule.inputEntries],
                  [feel.expression(e.text) if (e.text or "").strip() else None for e in rule.outputEntries])
            for rule in table.rules
        ]

    # SpiffWorkflow's BusinessRuleTaskMixin merges this into the task data
    def result(self, task: Any) -> dict[str, Any]:
        results = self.evaluate_for(task)
        if self.decision_table.hit_policy in ("COLLECT", "RULE ORDER", "OUTPUT ORDER") and not self.aggregation:
            merged: dict[str, list[Any]] = {}
            for row in results:
                for name, value in row.items():
                    merged.setdefault(name, []).append(value)
            return merged
        return results[0] if results else {}

    def evaluate_for(self, task: Any) -> list[dict[str, Any]]:
        """The decision result for a workflow task: its data, its script engine (errors name the task)."""
        script = task.workflow.script_engine
        return self.evaluate_table(task.data, lambda text, variables: script.evaluate(
            task, text, external_context=variables))

    def evaluate_table(self, data: dict[str, Any],
                       run: Callable[[str, dict[str, Any]], Any]) -> list[dict[str, Any]]:
        """The decision result: one dict (output name → value) per rule that counts under the hit policy.

        :param run: evaluates an expression against ``data`` and the extra variables (the outputs of the
            required decisions), in the sandbox
        """
        variables: dict[str, Any] = {}
        for decision in self.required:
            results = decision.evaluate_table(data, run)
            for name in decision.output_names:
                values = [row.get(name) for row in results]
                variables[name] = values[0] if len(values) == 1 else (values or None)

        def evaluate(text: str) -> Any:
            if text.isidentifier() and text not in data and text not in variables:
                return None  # FEEL: an unknown variable is null
            return run(text, variables)

        values = [evaluate(text) if text else None for text in self.inputs]
        matched = []
        for rule in self.rules:
            try:
                if all(feel.matches(tests, value, evaluate) for tests, value in zip(rule.tests, values, strict=False)):
                    matched.append(rule)
            except SpiffWorkflowException as exc:
                exc.add_note(f"Decision “{self.key}”, rule {rule.row} ({rule.rule_id}).")
                raise
        outputs = [{name: evaluate(text) if text else None
                    for name, text in zip(self.output_names, rule.outputs, strict=False)} for rule in matched]
        return self._hit_policy(matched, outputs, evaluate)

    def _hit_policy(self, matched: list[_Rule], outputs: list[dict[str, Any]], evaluate: Any) -> list[dict[str, Any]]:
        policy = self.decision_table.hit_policy
        rows = ", ".join(str(rule.row) for rule in matched)
        if policy == "UNIQUE" and len(matched) > 1:
            raise ScriptError(f"decision “{self.key}” has hit policy UNIQUE but rules {rows} match")
        if policy == "ANY" and any(o != outputs[0] for o in outputs):
            raise ScriptError(f"decision “{self.key}” has hit policy ANY but rules {rows} match with different outputs")
        if policy in ("UNIQUE", "FIRST", "ANY"):
            return outputs[:1]
        if policy in ("PRIORITY", "OUTPUT ORDER"):
            ordered = sorted(outputs, key=lambda row: self._rank(row, evaluate))
            return ordered[:1] if policy == "PRIORITY" else ordered
        if self.aggregation:
            name = self.output_names[0]
            present = [row[name] for row in outputs if row.get(name) is not None]
            if not present and self.aggregation != "COUNT":
                return []
            try:
                return [{name: AGGREGATIONS[self.aggregation](present)}]
            except TypeError as exc:
                raise ScriptError(f"decision “{self.key}”: {self.aggregation} of {present!r}: {exc}") from None
        return outputs  # COLLECT, RULE ORDER

    def _rank(self, row: dict[str, Any], evaluate: Any) -> tuple[int, ...]:
        ranks = []
        for name in self.output_names:
            allowed = [evaluate(text) for text in self.priorities.get(name, [])]
            ranks.append(allowed.index(row.get(name)) if row.get(name) in allowed else len(allowed))
        return tuple(ranks)


@dataclass
class DecisionFile:
    """The decisions of one DMN file, by id, and what is wrong with it."""

    decisions: dict[str, DecisionEngine] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def read_decisions(xml: str | bytes) -> DecisionFile:
    """Read every decision of a DMN file; never raises for a bad file (its problems say what is wrong).

    :raises InvalidDefinition: only when the file is not DMN at all (not XML, too large, DOCTYPE)
    """
    root = defs.parse_xml(xml)
    if not is_dmn(root):
        raise InvalidDefinition([Problem("The file is not a DMN decision file (no dmn:definitions root).")])
    nsmap = {k: v for k, v in root.nsmap.items() if k}
    nsmap["dmn"] = etree.QName(root).namespace or ""
    root = _with_ids(root)
    result = DecisionFile()
    elements = root.findall("dmn:decision", nsmap)
    if not elements:
        result.problems.append(Problem("The file has no decision."))
    reader = DMNParser(None, root, nsmap)
    for element in elements:
        key = element.get("id") or ""
        result.names[key] = element.get("name") or key
        engine = _read_decision(reader, element, nsmap, result.problems)
        if engine is not None:
            result.decisions[key] = engine
    for element in elements:
        engine = result.decisions.get(element.get("id") or "")
        for required in element.iterfind("dmn:informationRequirement/dmn:requiredDecision", nsmap):
            ref = (required.get("href") or "").lstrip("#")
            if ref not in result.names:
                result.problems.append(Problem(f"required decision “{ref}” is not in the file", element.get("id")))
            elif engine is not None and ref in result.decisions:
                engine.required.append(result.decisions[ref])
    for key in result.decisions:
        if _cycle(result.decisions[key], set()):
            result.problems.append(Problem("the decision requires itself (through the decisions it requires)", key))
    return result


def _with_ids(root: etree._Element) -> etree._Element:
    """A copy of ``root`` whose table parts all have ids: DMN makes them optional (Camunda 7's own examples
    leave some out), SpiffWorkflow's parser reads every one."""
    copy = deepcopy(root)
    for number, node in enumerate(copy.iter(), 1):
        if isinstance(node.tag, str) and node.get("id") is None and etree.QName(node).localname in (
                "decisionTable", "input", "inputExpression", "output", "rule", "inputEntry", "outputEntry"):
            node.set("id", f"{etree.QName(node).localname}_{number}")
    return copy


def _cycle(engine: DecisionEngine, seen: set[str]) -> bool:
    if engine.key in seen:
        return True
    return any(_cycle(r, seen | {engine.key}) for r in engine.required)


def _read_decision(reader: DMNParser, element: etree._Element, nsmap: dict[str, str],
                   problems: list[Problem]) -> DecisionEngine | None:
    key = element.get("id") or ""
    if not defs.KEY_PATTERN.match(key):
        problems.append(Problem(f"decision id “{key}” cannot be a decision key: at most 100 characters of letters, "
                                "digits, _, - and ., not starting with a digit, - or .", key or None))
        return None
    tables = element.findall("dmn:decisionTable", nsmap)
    if len(tables) != 1:
        problems.append(Problem("the decision is not a decision table (a literal expression or none): deptflow "
                                "evaluates decision tables only", key))
        return None
    table = tables[0]
    policy = " ".join((table.get("hitPolicy") or "UNIQUE").upper().split())
    aggregation = (table.get("aggregation") or "").upper() or None
    if policy not in HIT_POLICIES:
        problems.append(Problem(f"hit policy “{policy}” is not one of {', '.join(HIT_POLICIES)}", key))
        return None
    if aggregation and (policy != "COLLECT" or aggregation not in AGGREGATIONS):
        problems.append(Problem(f"aggregation “{aggregation}” needs hit policy COLLECT and one of SUM, COUNT, MIN, MAX",
                                key))
        return None
    try:
        decision = reader._parse_decision([element])
    except (ValidationException, KeyError, IndexError, SpiffWorkflowException) as exc:
        problems.append(Problem(f"SpiffWorkflow cannot read the decision: {str(exc).splitlines()[0]}", key))
        return None
    decision.decisionTables[0].hit_policy = policy
    if aggregation and len(decision.decisionTables[0].outputs) != 1:
        problems.append(Problem(f"aggregation {aggregation} needs exactly one output column", key))
        return None
    priorities: dict[str, list[str]] = {}
    for output in table.findall("dmn:output", nsmap):
        allowed = output.find("dmn:outputValues/dmn:text", nsmap)
        if allowed is not None and (allowed.text or "").strip():
            priorities[output.get("name") or output.get("label") or output.get("id") or ""] = [
                feel.expression(v) for v in feel.split_top_level(allowed.text)]
    if policy in ("PRIORITY", "OUTPUT ORDER") and not priorities:
        problems.append(Problem(f"hit policy {policy} orders by the outputs' allowed values, and no output has any",
                                key))
        return None
    try:
        engine = DecisionEngine(decision, aggregation, priorities)
    except feel.FeelError as exc:
        problems.append(Problem(f"input entry {exc}: deptflow reads FEEL values, comparisons, ranges, lists and "
                                "not(...)", key))
        return None
    problems.extend(_compile_check(engine))
    return engine


def _compile_check(engine: DecisionEngine) -> list[Problem]:
    """Every expression of the table must compile in the sandbox (it is evaluated there)."""
    texts = [("input expression", t) for t in engine.inputs if t]
    for rule in engine.rules:
        texts += [(f"rule {rule.row}", t) for tests in rule.tests for t in feel.operand_texts(tests)]
        texts += [(f"rule {rule.row} output", t) for t in rule.outputs if t]
    texts += [("output values", t) for values in engine.priorities.values() for t in values]
    problems = []
    for where, text in texts:
        try:
            sandbox.compile_expression(text)
        except (ScriptError, SyntaxError) as exc:
            problems.append(Problem(f"{where}: “{text}” is not an expression deptflow evaluates: {exc}", engine.key))
    return problems


# --- business rule tasks --------------------------------------------------------------------


class Decisions:
    """The decisions business rule tasks may call: decision key → versions (oldest first) of
    (identity, DMN XML). :class:`StoredDecisions` reads them from the database."""

    def __init__(self, files: Iterable[tuple[str, int, str]] = ()):
        self._versions: dict[str, list[tuple[Any, str]]] = {}
        self._files: dict[str, DecisionFile] = {}
        for key, version, xml in files:
            self._versions.setdefault(key, []).append(((key, version, defs.sha256(xml)), xml))

    def resolve(self, key: str, version: int | None = None) -> tuple[Any, str] | None:
        """(identity, xml) of the latest version of ``key``, or of ``version``; None when not published."""
        versions = self._versions.get(key) or []
        if version is None:
            return versions[-1] if versions else None
        return versions[version - 1] if 0 < version <= len(versions) else None

    def identity(self, refs: tuple[tuple[str, int | None], ...]) -> tuple[Any, ...]:
        """What the parsed diagram depends on: the resolved version of every decision it calls."""
        return tuple((resolved[0] if (resolved := self.resolve(key, version)) else None) for key, version in refs)

    def engine(self, key: str, version: int | None = None) -> DecisionEngine | None:
        resolved = self.resolve(key, version)
        if resolved is None:
            return None
        digest = defs.sha256(resolved[1])
        if digest not in self._files:
            self._files[digest] = read_decisions(resolved[1])
        return self._files[digest].decisions.get(key)


class StoredDecisions(Decisions):
    """The published decisions of the database ``session`` reaches, read when asked for."""

    def __init__(self, session: Session):
        super().__init__()
        self.session = session

    def resolve(self, key: str, version: int | None = None) -> tuple[Any, str] | None:
        row = published(self.session, key, version)
        return ((key, row.version, row.sha256), row.xml) if row is not None else None

    def identity(self, refs: tuple[tuple[str, int | None], ...]) -> tuple[Any, ...]:
        """One query: the version and content digest each reference resolves to (None: not published)."""
        if not refs:
            return ()
        keys = {key for key, _version in refs}
        rows = self.session.execute(select(DecisionDefinition.decision_key, DecisionDefinition.version,
                                           DecisionDefinition.sha256)
                                    .where(DecisionDefinition.decision_key.in_(keys))).all()
        found = {(key, version): (key, version, digest) for key, version, digest in rows}
        latest: dict[str, tuple[str, int, str]] = {}
        for key, version, digest in rows:
            if version > latest.get(key, ("", 0, ""))[1]:
                latest[key] = (key, version, digest)
        return tuple(found.get((key, version)) if version else latest.get(key) for key, version in refs)


#: DMN ``typeRef`` → the form field type a value read by the decision gets
_FIELD_TYPES = {"string": "string", "boolean": "boolean", "integer": "long", "long": "long", "int": "long",
                "double": "double", "number": "double", "date": "date"}


def input_variables(engine: DecisionEngine) -> dict[str, str]:
    """The case variables decision ``engine`` reads (input expressions that are a variable name, in it and in
    the decisions it requires), each with the form field type of its ``typeRef`` (``string`` when none)."""
    found: dict[str, str] = {}
    outputs = {name for required in engine.required for name in required.output_names}
    for required in engine.required:
        found.update(input_variables(required))
    for item in engine.decision_table.inputs:
        name = (item.expression or "").strip()
        if name.isidentifier() and name not in outputs:
            found.setdefault(name, _FIELD_TYPES.get((item.typeRef or "").lower(), "string"))
    return found


def evaluate(decided: Decisions, key: str, data: dict[str, Any], version: int | None = None) -> list[dict[str, Any]]:
    """Evaluate decision ``key`` against ``data`` outside a case (in the sandbox), as a business rule task
    would: its result, one dict of outputs per rule that counts.

    :raises NotFound: the decision is not published
    """
    engine = decided.engine(key, version)
    if engine is None:
        raise NotFound(f"There is no published decision “{key}”.")
    return engine.evaluate_table(data, lambda text, variables: sandbox.evaluate(text, {**variables, **data}))


def decision_ref(node: etree._Element) -> tuple[str, int | None] | None:
    """``(decision key, version or None for the latest)`` of a business rule task that calls a decision."""
    key = (node.get(f"{{{CAMUNDA_NS}}}decisionRef") or "").strip()
    if not key:
        return None
    version = None
    if node.get(f"{{{CAMUNDA_NS}}}decisionRefBinding") == "version":
        text = (node.get(f"{{{CAMUNDA_NS}}}decisionRefVersion") or "").strip()
        version = int(text) if text.isdigit() else -1
    return key, version


def decision_refs(root: etree._Element) -> tuple[tuple[str, int | None], ...]:
    """Every decision the business rule tasks of a file call, in document order."""
    refs = (decision_ref(node) for node in root.iter(f"{{{defs.BPMN_NS}}}businessRuleTask"))
    return tuple(dict.fromkeys(ref for ref in refs if ref is not None))


def task_problems(process: etree._Element, decisions: Decisions | None) -> list[Problem]:
    """A business rule task must call a published decision and map its result in a way Camunda 7 knows."""
    problems = []
    for node in process.iter(f"{{{defs.BPMN_NS}}}businessRuleTask"):
        ref, element_id = decision_ref(node), node.get("id")
        if ref is None:
            continue
        key, version = ref
        mapping = node.get(f"{{{CAMUNDA_NS}}}mapDecisionResult") or "resultList"
        if mapping not in MAPPINGS:
            problems.append(Problem(f"camunda:mapDecisionResult “{mapping}” is not one of {', '.join(MAPPINGS)}",
                                    element_id))
        if version == -1:
            problems.append(Problem("camunda:decisionRefBinding is version but camunda:decisionRefVersion is not a "
                                    "version number", element_id))
        elif decisions is None or decisions.engine(key, version) is None:
            which = f"version {version} of decision" if version else "decision"
            problems.append(Problem(f"business rule task calls {which} “{key}”, which is not published: deploy "
                                    "its .dmn file first", element_id))
    return problems


class DecisionTask(BusinessRuleTask):
    """Camunda's business rule task: the decision's result stored as ``camunda:mapDecisionResult`` says."""

    def __init__(self, wf_spec: Any, name: str, dmnEngine: Any, result_variable: str | None = None,  # noqa: N803
                 mapping: str = "resultList", **kwargs: Any):
        super().__init__(wf_spec, name, dmnEngine, **kwargs)
        self.result_variable = result_variable
        self.mapping = mapping

    def _run_hook(self, my_task: Any) -> bool:
        try:
            if self.dmnEngine is None:
                raise ScriptError("the decision this task calls is not published")
            if self.result_variable:
                results = self.dmnEngine.evaluate_for(my_task)
                my_task.data[self.result_variable] = map_result(results, self.mapping)
            else:
                my_task.data.update(self.dmnEngine.result(my_task))
        except SpiffWorkflowException as exc:
            exc.add_note(f"Business Rule Task '{self.bpmn_name or self.bpmn_id}'.")
            raise
        except Exception as exc:  # noqa: BLE001 - named after the task, as SpiffWorkflow's own does
            error = WorkflowTaskException(str(exc), task=my_task, exception=exc)
            error.add_note(f"Business Rule Task '{self.bpmn_name or self.bpmn_id}'.")
            raise error from None
        return super(BusinessRuleTaskMixin, self)._run_hook(my_task)


def map_result(results: list[dict[str, Any]], mapping: str) -> Any:
    """Camunda 7's ``mapDecisionResult``: the decision result as the result variable holds it."""
    if mapping == "resultList":
        return results
    if mapping == "collectEntries":
        if any(len(row) != 1 for row in results):
            raise ScriptError("collectEntries needs results with exactly one output each")
        return [next(iter(row.values())) for row in results]
    if len(results) > 1:
        raise ScriptError(f"{mapping} needs at most one result, the decision gave {len(results)}")
    if mapping == "singleResult":
        return results[0] if results else None
    if results and len(results[0]) != 1:
        raise ScriptError("singleEntry needs a result with exactly one output")
    return next(iter(results[0].values())) if results else None


class _DecisionTaskParser(CamundaTaskParser):
    def create_task(self) -> DecisionTask:
        ref = decision_ref(self.node)
        decisions: Decisions | None = getattr(self.process_parser.parser, "decisions", None)
        engine = decisions.engine(*ref) if ref is not None and decisions is not None and ref[1] != -1 else None
        return DecisionTask(self.spec, self.bpmn_id, dmnEngine=engine,
                            result_variable=self.node.get(f"{{{CAMUNDA_NS}}}resultVariable") or None,
                            mapping=self.node.get(f"{{{CAMUNDA_NS}}}mapDecisionResult") or "resultList",
                            **self.bpmn_attributes)

    @staticmethod
    def get_decision_ref(node: etree._Element) -> str:
        ref = decision_ref(node)
        return ref[0] if ref else ""


class DeptflowParser(CamundaParser):
    """SpiffWorkflow's Camunda parser whose business rule tasks call deptflow's published decisions."""

    OVERRIDE_PARSER_CLASSES = {**CamundaParser.OVERRIDE_PARSER_CLASSES,
                               full_tag("businessRuleTask"): (_DecisionTaskParser, DecisionTask)}

    def __init__(self, decisions: Decisions | None = None):
        super().__init__()
        self.decisions = decisions


# --- storage --------------------------------------------------------------------------------


def published(session: Session, key: str, version: int | None = None) -> DecisionDefinition | None:
    """Version ``version`` of decision ``key``, else its latest; None when there is none."""
    query = select(DecisionDefinition).where(DecisionDefinition.decision_key == key)
    if version is not None:
        query = query.where(DecisionDefinition.version == version)
    return session.scalars(query.order_by(DecisionDefinition.version.desc()).limit(1)).first()


def source(session: Session) -> StoredDecisions:
    return StoredDecisions(session)


def with_files(session: Session | None, files: Iterable[bytes]) -> Decisions:
    """The published decisions of ``session``'s database (none without one), and after them, as newer
    versions, the decisions of the DMN ``files`` (``deptflow check`` of a BPMN file with its DMN files)."""
    found: list[tuple[str, int, str]] = []
    if session is not None:
        rows = session.scalars(select(DecisionDefinition).order_by(DecisionDefinition.decision_key,
                                                                   DecisionDefinition.version))
        found = [(row.decision_key, row.version, row.xml) for row in rows]
    for data in files:
        try:
            read = read_decisions(data)
        except InvalidDefinition:
            continue
        found += [(key, 0, data.decode("utf-8", "replace")) for key in read.decisions]
    return Decisions(found)


def check(xml: str | bytes) -> tuple[DecisionFile | None, list[Problem]]:
    """Read a DMN file as deploying would; never raises (``None`` when it is not DMN)."""
    try:
        result = read_decisions(xml)
    except InvalidDefinition as exc:
        return None, list(exc.problems)
    return result, result.problems


def deploy_decisions(session: Session, actor: User | None, xml: str | bytes, *,
                     note: str = "") -> list[DecisionDefinition]:
    """Publish every decision of a DMN file as the next version of its key; a decision whose file is
    unchanged keeps its version. All or nothing: one error in the file publishes none.

    :raises InvalidDefinition: listing every error of the file with its decision id
    """
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    result, problems = check(text)
    errors = [p for p in problems if p.severity == "error"]
    if result is None or errors or not result.decisions:
        raise InvalidDefinition(errors or problems or [Problem("The file has no decision.")])
    digest = defs.sha256(text)
    rows = []
    for key in result.decisions:
        latest = published(session, key)
        if latest is not None and latest.sha256 == digest:
            rows.append(latest)
            continue
        row = DecisionDefinition(decision_key=key, version=(latest.version + 1) if latest else 1,
                                 name=result.names[key][:200], xml=text, sha256=digest,
                                 published_by_id=actor.id if actor else None, published_at=utcnow(),
                                 note=(note or "").strip()[:2000])
        session.add(row)
        session.flush()
        audit.record(session, EventKind.DEFINITION_PUBLISHED, actor=actor, element_id=key, decision=key,
                     version=row.version, sha256=digest, note=row.note)
        rows.append(row)
    return rows


@dataclass
class DecisionRow:
    key: str
    name: str
    latest: DecisionDefinition
    versions: int


def catalogue(session: Session) -> list[DecisionRow]:
    """Every published decision with its latest version, by name."""
    newest = (select(DecisionDefinition.decision_key, func.max(DecisionDefinition.version).label("version"),
                     func.count().label("versions"))
              .group_by(DecisionDefinition.decision_key).subquery())
    rows = session.execute(select(DecisionDefinition, newest.c.versions).join(
        newest, (DecisionDefinition.decision_key == newest.c.decision_key)
        & (DecisionDefinition.version == newest.c.version)))
    return sorted((DecisionRow(d.decision_key, d.name, d, count) for d, count in rows), key=lambda r: r.name.lower())


def versions_of(session: Session, key: str) -> list[DecisionDefinition]:
    """The versions of decision ``key``, newest first."""
    query = (select(DecisionDefinition).where(DecisionDefinition.decision_key == key)
             .order_by(DecisionDefinition.version.desc()))
    found = list(session.scalars(query))
    if not found:
        raise NotFound(f"There is no decision “{key}”.")
    return found
