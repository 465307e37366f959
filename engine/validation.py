"""Checks of a BPMN diagram before it is saved or published, with the ids of the elements concerned.

:func:`read_process` is the gate every saved or published diagram goes through: readable BPMN with
a process whose id can serve as the process key. :func:`validate` is the full report the modeler
shows and publishing enforces: what :func:`engine.definitions.parse_definition` checks (SpiffWorkflow
parses it, roles exist, forms are well-typed, decisions have conditions that compile in the sandbox)
plus :func:`lint`, the structure of the graph (every user task reachable, the bpmnlint rules that
matter here). Errors block publishing, warnings must be acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree
from sqlalchemy.orm import Session

from . import decisions, sandbox
from . import definitions as defs
from .definitions import BPMN_NS, NS
from .errors import InvalidDefinition, NotBpmn, Problem
from .expressions import literal_or_expression

KEY_PATTERN = defs.KEY_PATTERN

GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
ACTIVITIES = {"task", "userTask", "serviceTask", "scriptTask", "manualTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
FLOW_NODES = GATEWAYS | ACTIVITIES | EVENTS
CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}


NOT_BPMN = Problem("The file is not a BPMN 2.0 diagram (no bpmn:definitions root).")


def is_bpmn_root(root: etree._Element) -> bool:
    return local_name(root) == "definitions" and etree.QName(root).namespace == BPMN_NS


def local_name(node: etree._Element) -> str:
    """The tag of ``node`` without its namespace; ``""`` for comments and processing instructions."""
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


# --- the validation report ------------------------------------------------------------------


@dataclass
class ValidationReport:
    """Everything wrong with a diagram; ``errors`` block publishing, ``warnings`` need an acknowledgement."""

    process_id: str | None
    name: str | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "note"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "process_id": self.process_id,
            "name": self.name,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [{"message": p.message, "element_id": p.element_id, "severity": p.severity,
                          "kind": p.kind, "group": p.group, "delegate": p.delegate} for p in self.problems],
        }


def _executable_process(root: etree._Element) -> etree._Element | None:
    processes = list(root.iterfind("bpmn:process", NS))
    executable = [p for p in processes if defs.is_executable(p)]
    return (executable or processes or [None])[0]


def validate(session: Session, xml: str | bytes) -> ValidationReport:
    """Check ``xml`` as publishing would, and lint its structure. Never raises for a bad diagram.

    :returns: the report; problems carry the id of the element they concern where there is one
    """
    return report(xml, defs.known_roles(session), defs.published_resolver(session), decisions.source(session))


def report(xml: str | bytes, roles: dict[str, str], resolve: defs.CallResolver | None = None,
           decided: decisions.Decisions | None = None) -> ValidationReport:
    """:func:`validate` against ``roles`` (key → display name) and ``decided`` instead of a database's.

    :param resolve: finds the processes of other files that call activities name; ``None``: calls are not checked
    """
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition as exc:
        return ValidationReport(None, None, list(exc.problems))
    process = _executable_process(root)
    process_id = process.get("id") if process is not None else None
    name = (process.get("name") or process_id) if process is not None else None
    _parsed, problems = defs.parse_definitions(xml, roles, resolve, decided)
    for executable in root.iterfind("bpmn:process", NS):
        if defs.is_executable(executable):
            problems = problems + lint(executable) + sandbox_warnings(executable)
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: {"error": 0, "warning": 1}.get(p.severity, 2))
    return ValidationReport(process_id, name, unique)


@dataclass
class FileCheck:
    """What ``deptflow check`` and the modeler's import say of one file: the processes that would be
    published, and its problems sorted into what needs mapping, what blocks, warnings and notes."""

    verdict: str  # "deploys", "cannot deploy", "not BPMN"
    processes: list[tuple[str, str]]
    report: ValidationReport

    @property
    def exit_code(self) -> int:
        return {"deploys": 0, "cannot deploy": 1}.get(self.verdict, 2)

    @property
    def needs_mapping(self) -> list[Problem]:
        return [p for p in self.report.errors if p.kind == "mapping"]

    @property
    def blocks(self) -> list[Problem]:
        return [p for p in self.report.errors if p.kind != "mapping"]


def check_file(xml: str | bytes, roles: dict[str, str], resolve: defs.CallResolver | None = None,
               decided: decisions.Decisions | None = None) -> FileCheck:
    """Check one file without deploying it; never raises, whatever the file holds. A DMN file's
    "processes" are its decisions.

    :param roles: the roles that lanes and candidate groups must name (key → display name)
    :param resolve: finds called processes of other files (:func:`files_resolver`); by default none is found
    :param decided: the decisions business rule tasks may call
    """
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition as exc:
        return FileCheck("not BPMN", [], ValidationReport(None, None, list(exc.problems)))
    if decisions.is_dmn(root):
        return _check_dmn(xml)
    if not is_bpmn_root(root):
        return FileCheck("not BPMN", [], ValidationReport(None, None, [NOT_BPMN]))
    try:
        result = report(xml, roles, resolve or files_resolver({}), decided)
    except Exception as exc:  # noqa: BLE001 - a check names what failed, it never shows a traceback
        return FileCheck("cannot deploy", [], ValidationReport(None, None, [
            Problem(f"deptflow could not check the file: {type(exc).__name__}: {exc}")]))
    processes = [(p.get("id") or "", p.get("name") or p.get("id") or "")
                 for p in root.iterfind("bpmn:process", NS) if defs.is_executable(p)]
    verdict = "deploys" if processes and result.ok else "cannot deploy"
    return FileCheck(verdict, processes, result)


def files_resolver(files: dict[str, bytes], fallback: defs.CallResolver | None = None) -> defs.CallResolver:
    """Finds a called process among the executable processes of ``files`` (name → content: those checked
    together), else through ``fallback`` (the published ones of a database). A process found in a file
    counts as found for any binding but a version tag it does not have: its version is known only once
    it is published."""
    tags: dict[str, set[str | None]] = {}
    for content in files.values():
        try:
            root = defs.parse_xml(content)
        except InvalidDefinition:
            continue
        for process in root.iterfind("bpmn:process", NS):
            if defs.is_executable(process):
                tags.setdefault(process.get("id") or "", set()).add(process.get(f"{{{defs.CAMUNDA_NS}}}versionTag"))

    def resolve(binding: defs.CallBinding) -> tuple[int, int] | str:
        found = tags.get(binding.process_id)
        if found is not None and (binding.mode != "versionTag" or binding.value in found):
            return 0, 0
        if fallback is not None:
            return fallback(binding)
        return "it is not published: publish it first"

    return resolve


def _check_dmn(xml: str | bytes) -> FileCheck:
    try:
        result, problems = decisions.check(xml)
    except Exception as exc:  # noqa: BLE001 - a check names what failed, it never shows a traceback
        result, problems = None, [Problem(f"deptflow could not check the file: {type(exc).__name__}: {exc}")]
    found = [(key, result.names[key]) for key in result.decisions] if result is not None else []
    first = found[0] if found else (None, None)
    checked = ValidationReport(first[0], first[1], problems)
    return FileCheck("deploys" if found and checked.ok else "cannot deploy", found, checked)


def lint(process: etree._Element) -> list[Problem]:
    """Structural checks beyond what SpiffWorkflow needs to run a diagram.

    Errors: user tasks must be reachable from a
    start event; flows must connect elements of the process; inclusive gateways need conditions
    or a default like exclusive ones. Warnings: a few of bpmnlint's recommended rules (named in
    brackets; bpmnlint itself needs a bundler to run in the browser), a start form without
    ``title``, untyped form fields.
    """
    problems: list[Problem] = []
    process_id = process.get("id") or ""
    if len(process.get("name") or "") > 200:
        problems.append(Problem("the process name is longer than 200 characters", process_id))

    nodes = {n.get("id"): n for n in process.iter(f"{{{BPMN_NS}}}*") if local_name(n) in FLOW_NODES and n.get("id")}
    flows = [f for f in process.iter(f"{{{BPMN_NS}}}sequenceFlow")]
    incoming: dict[str, list[etree._Element]] = {}
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in flows:
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow)
        incoming.setdefault(flow.get("targetRef") or "", []).append(flow)

    reachable = _reachable(process, nodes, outgoing)
    for node_id, node in nodes.items():
        kind = local_name(node)
        if node_id in reachable:
            continue
        if kind == "userTask":
            problems.append(Problem("user task cannot be reached from the start event", node_id))
        elif kind != "boundaryEvent":
            problems.append(Problem("element cannot be reached from the start event [no-disconnected]",
                                    node_id, "warning"))

    if not any(local_name(n) == "endEvent" for n in process):
        problems.append(Problem("the process has no end event [end-event-required]", process_id, "warning"))
    seen_pairs: set[tuple[str, str]] = set()
    for flow in flows:
        for end in ("sourceRef", "targetRef"):
            if flow.get(end) not in nodes:
                problems.append(Problem(f"the flow's {end[:6]} “{flow.get(end)}” is not an element of the process",
                                        flow.get("id")))
        pair = (flow.get("sourceRef") or "", flow.get("targetRef") or "")
        if pair in seen_pairs:
            problems.append(Problem("a second flow between the same two elements [no-duplicate-sequence-flows]",
                                    flow.get("id"), "warning"))
        seen_pairs.add(pair)

    for node_id, node in nodes.items():
        kind = local_name(node)
        outs, ins = outgoing.get(node_id, []), incoming.get(node_id, [])
        conditional = [f for f in outs if f.find("bpmn:conditionExpression", NS) is not None]
        if kind == "inclusiveGateway" and len(outs) > 1:
            for flow in outs:
                if flow not in conditional and flow.get("id") != node.get("default"):
                    problems.append(Problem("outgoing flow of an inclusive decision has neither a condition nor "
                                            "is it the default", flow.get("id")))
        if kind in ACTIVITIES and len(outs) > 1 and len(conditional) < len(outs):
            problems.append(Problem("several outgoing flows without conditions split the path implicitly; "
                                    "use a gateway [no-implicit-split]", node_id, "warning"))
        if kind in GATEWAYS and len(ins) == 1 and len(outs) == 1:
            problems.append(Problem("gateway with one way in and one way out [superfluous-gateway]",
                                    node_id, "warning"))
        if kind == "userTask" and not (node.get("name") or "").strip():
            problems.append(Problem("user task has no name; the inbox would show its id [label-required]",
                                    node_id, "warning"))
        for form_field in node.iterfind("./bpmn:extensionElements/camunda:formData/camunda:formField", NS):
            if not form_field.get("type"):
                problems.append(Problem(f"form field “{form_field.get('id')}” has no type; it is read as a string",
                                        node_id, "warning"))

    starts = [n for n in process.iterfind("bpmn:startEvent", NS)
              if not any(local_name(c).endswith("EventDefinition") for c in n)]
    if starts:
        start = starts[0]
        fields = [f.get("id") for f in start.iterfind("./bpmn:extensionElements/camunda:formData/camunda:formField",
                                                      NS)]
        if "title" not in fields:
            problems.append(Problem("the start form has no “title” field; cases will be named after the process",
                                    start.get("id"), "warning"))
    return problems


def sandbox_warnings(process: etree._Element) -> list[Problem]:
    """Warnings for conditions and scripts that compile but would be refused by the sandbox each time
    they run (a call of ``getattr``, of a name that is no builtin or helper, ``x.format``…), on the
    flow or script task concerned. Compile errors are :func:`engine.definitions.parse_definition`'s."""
    problems: list[Problem] = []
    for flow in process.iter(f"{{{BPMN_NS}}}sequenceFlow"):
        condition = flow.find("bpmn:conditionExpression", NS)
        text = (condition.text or "").strip() if condition is not None else ""
        if text:
            is_literal, expression = literal_or_expression(text)
            if not is_literal:
                for refusal in sandbox.run_time_refusals(expression, "condition"):
                    problems.append(Problem(f"the condition {refusal}; it will fail when it is evaluated",
                                            flow.get("id"), "warning"))
    for task in process.iter(f"{{{BPMN_NS}}}scriptTask"):
        script = task.find("bpmn:script", NS)
        if script is not None and (script.text or "").strip():
            for refusal in sandbox.run_time_refusals(script.text, "script"):
                problems.append(Problem(f"the script {refusal}; it will fail when it runs", task.get("id"),
                                        "warning"))
    return problems


def _reachable(process: etree._Element, nodes: dict[str, etree._Element],
               outgoing: dict[str, list[etree._Element]]) -> set[str]:
    """Flow nodes a token can get to: from the start events over flows, boundary events and sub-processes."""
    boundaries: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if local_name(node) == "boundaryEvent":
            boundaries.setdefault(node.get("attachedToRef") or "", []).append(node_id)

    def entries(container: etree._Element) -> list[str]:
        """Where a container's tokens begin: its start events, event sub-processes, link catch events."""
        def is_entry(child: etree._Element) -> bool:
            kind = local_name(child)
            return (kind == "startEvent"
                    or (kind == "subProcess" and child.get("triggeredByEvent") == "true")
                    or (kind == "intermediateCatchEvent" and child.find("bpmn:linkEventDefinition", NS) is not None))

        return [child.get("id") for child in container if child.get("id") and is_entry(child)]

    seen: set[str] = set()
    todo = entries(process)
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        todo.extend(f.get("targetRef") or "" for f in outgoing.get(node_id, []))
        todo.extend(boundaries.get(node_id, []))
        if local_name(node) in CONTAINERS:
            todo.extend(entries(node))
    return seen


# --- reading an uploaded or edited diagram --------------------------------------------------


def read_process(xml: str | bytes, expected_key: str | None = None) -> tuple[str, str, str]:
    """``(text, process id, name)`` of an uploaded or edited diagram, parsed safely.

    :param expected_key: the process being edited; the diagram's process id must still be this one
    :raises InvalidDefinition: not UTF-8, too large, not XML, entities, no process in it, another process
    """
    if isinstance(xml, bytes):
        try:
            text = xml.decode("utf-8")
        except UnicodeDecodeError:
            raise NotBpmn([Problem("The file is not UTF-8 encoded text.")]) from None
    else:
        text = xml
    root = defs.parse_xml(text)
    if not is_bpmn_root(root):
        raise NotBpmn([NOT_BPMN])
    process = _executable_process(root)
    if process is None or not process.get("id"):
        raise InvalidDefinition([Problem("The file has no bpmn:process with an id.")])
    process_id = process.get("id")
    if not KEY_PATTERN.match(process_id):
        raise InvalidDefinition([Problem(f"process id “{process_id}” cannot be a process key: at most 100 "
                                         "characters of letters, digits, _, - and ., not starting with a digit, "
                                         "- or .", process_id)])
    if expected_key is not None and process_id != expected_key:
        raise InvalidDefinition([Problem(f"the process id changed from “{expected_key}” to “{process_id}”: it is the "
                                         "process key and must stay; start a new process or import a file to make "
                                         "another process", process_id)])
    return text, process_id, (process.get("name") or process_id)[:200]
