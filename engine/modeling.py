"""Process owners' tools: drafts, the validation report, publishing, version diffs, migration.

A diagram moves through three stages. A **draft** is saved XML that nothing runs on; every
save is kept, so a process has a draft history. **Validation** checks what
:func:`engine.definitions.parse_definition` checks (SpiffWorkflow parses it, roles exist,
forms are well-typed, decisions have conditions that compile in the sandbox) plus the
structure of the graph (every user task reachable, the bpmnlint rules that matter here).
**Publishing** makes version N+1 through :func:`engine.definitions.deploy`; errors block it,
warnings must be acknowledged. Running instances stay on their version until a process owner
**migrates** them, which SpiffWorkflow's diff/migrate helpers do only when every active task of
the instance still exists in the new version.

Every function takes the caller's session and flushes; the caller commits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from lxml import etree
from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import audit, persistence, runtime
from . import definitions as defs
from . import tasks as projection
from .clock import utcnow
from .db import HumanTask, Process, ProcessDefinition, ProcessDraft, ProcessInstance, User
from .definitions import BPMN_NS, NS
from .errors import Conflict, InvalidDefinition, InvalidForm, NotAllowed, NotFound, Problem
from .forms import CAMUNDA_NS

OWNER_ROLES = frozenset({"process_owner", "admin"})
KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
#: Instance states that migration may touch (finished cases stay on their version for good).
MIGRATABLE = ("running", "suspended")
#: Task states that hold a case's position: a task here must exist in the target version.
ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR

GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
ACTIVITIES = {"task", "userTask", "serviceTask", "scriptTask", "manualTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
FLOW_NODES = GATEWAYS | ACTIVITIES | EVENTS
CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}


def _check_owner(actor: User | None) -> None:
    if actor is not None and not actor.role_keys & OWNER_ROLES:
        raise NotAllowed("Only process owners and administrators may change process diagrams.")


def _local(node: etree._Element) -> str:
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
        return [p for p in self.problems if p.severity != "error"]

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
            "problems": [{"message": p.message, "element_id": p.element_id, "severity": p.severity}
                         for p in self.problems],
        }


def _executable_process(root: etree._Element) -> etree._Element | None:
    processes = list(root.iterfind("bpmn:process", NS))
    executable = [p for p in processes if p.get("isExecutable", "true") == "true"]
    return (executable or processes or [None])[0]


def validate(session: Session, xml: str | bytes) -> ValidationReport:
    """Check ``xml`` as publishing would, and lint its structure. Never raises for a bad diagram.

    :returns: the report; problems carry the id of the element they concern where there is one
    """
    try:
        root = defs.parse_xml(xml)
    except InvalidDefinition as exc:
        return ValidationReport(None, None, list(exc.problems))
    process = _executable_process(root)
    process_id = process.get("id") if process is not None else None
    name = (process.get("name") or process_id) if process is not None else None
    _parsed, problems = defs.parse_definition(xml, defs.known_roles(session))
    if process is not None and process.get("isExecutable", "true") == "true":
        problems = problems + lint(process)
    unique = list(dict.fromkeys(problems))
    unique.sort(key=lambda p: p.severity != "error")
    return ValidationReport(process_id, name, unique)


def lint(process: etree._Element) -> list[Problem]:
    """Structural checks beyond what SpiffWorkflow needs to run a diagram.

    Errors: the process id must serve as a process key; user tasks must be reachable from a
    start event; flows must connect elements of the process; inclusive gateways need conditions
    or a default like exclusive ones. Warnings: a few of bpmnlint's recommended rules (named in
    brackets; bpmnlint itself needs a bundler to run in the browser), a start form without
    ``title``, untyped form fields.
    """
    problems: list[Problem] = []
    process_id = process.get("id") or ""
    if not KEY_PATTERN.match(process_id):
        problems.append(Problem(f"process id “{process_id}” must be a name of letters, digits and _ "
                                "(at most 100 characters): it becomes the process key", process_id or None))
    if len(process.get("name") or "") > 200:
        problems.append(Problem("the process name is longer than 200 characters", process_id))

    nodes = {n.get("id"): n for n in process.iter(f"{{{BPMN_NS}}}*") if _local(n) in FLOW_NODES and n.get("id")}
    flows = [f for f in process.iter(f"{{{BPMN_NS}}}sequenceFlow")]
    incoming: dict[str, list[etree._Element]] = {}
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in flows:
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow)
        incoming.setdefault(flow.get("targetRef") or "", []).append(flow)

    reachable = _reachable(process, nodes, outgoing)
    for node_id, node in nodes.items():
        kind = _local(node)
        if node_id in reachable:
            continue
        if kind == "userTask":
            problems.append(Problem("user task cannot be reached from the start event", node_id))
        elif kind != "boundaryEvent":
            problems.append(Problem("element cannot be reached from the start event [no-disconnected]",
                                    node_id, "warning"))

    if not any(_local(n) == "endEvent" for n in process):
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
        kind = _local(node)
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
              if not any(_local(c).endswith("EventDefinition") for c in n)]
    if starts:
        start = starts[0]
        fields = [f.get("id") for f in start.iterfind("./bpmn:extensionElements/camunda:formData/camunda:formField",
                                                      NS)]
        if "title" not in fields:
            problems.append(Problem("the start form has no “title” field; cases will be named after the process",
                                    start.get("id"), "warning"))
    return problems


def _reachable(process: etree._Element, nodes: dict[str, etree._Element],
               outgoing: dict[str, list[etree._Element]]) -> set[str]:
    """Flow nodes a token can get to: from the start events over flows, boundary events and sub-processes."""
    boundaries: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        if _local(node) == "boundaryEvent":
            boundaries.setdefault(node.get("attachedToRef") or "", []).append(node_id)

    def entries(container: etree._Element) -> list[str]:
        """Where a container's tokens begin: its start events, event sub-processes, link catch events."""
        def is_entry(child: etree._Element) -> bool:
            kind = _local(child)
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
        if _local(node) in CONTAINERS:
            todo.extend(entries(node))
    return seen


# --- drafts ---------------------------------------------------------------------------------


def _read_process(xml: str | bytes, expected_key: str | None = None) -> tuple[str, str, str]:
    """``(text, process id, name)`` of an uploaded or edited diagram, parsed safely.

    :param expected_key: the process being edited; the diagram's process id must still be this one
    :raises InvalidDefinition: not UTF-8, too large, not XML, entities, no process in it, another process
    """
    if isinstance(xml, bytes):
        try:
            text = xml.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidDefinition([Problem("The file is not UTF-8 encoded text.")]) from None
    else:
        text = xml
    root = defs.parse_xml(text)
    if _local(root) != "definitions" or etree.QName(root).namespace != BPMN_NS:
        raise InvalidDefinition([Problem("The file is not a BPMN 2.0 diagram (no bpmn:definitions root).")])
    process = _executable_process(root)
    if process is None or not process.get("id"):
        raise InvalidDefinition([Problem("The file has no bpmn:process with an id.")])
    process_id = process.get("id")
    if not KEY_PATTERN.match(process_id):
        raise InvalidDefinition([Problem(f"process id “{process_id}” must be a name of letters, digits and _ "
                                         "(at most 100 characters)", process_id)])
    if expected_key is not None and process_id != expected_key:
        raise InvalidDefinition([Problem(f"the process id changed from “{expected_key}” to “{process_id}”: it is the "
                                         "process key and must stay; start a new process or import a file to make "
                                         "another process", process_id)])
    return text, process_id, (process.get("name") or process_id)[:200]


def save_draft(session: Session, actor: User | None, xml: str | bytes, *, note: str = "",
               process_key: str | None = None) -> ProcessDraft:
    """Store ``xml`` as a new draft of its process (the process id in the XML); nothing runs on it.

    The diagram need not be valid, only readable BPMN: a draft is work in progress.

    :param process_key: when given, the diagram must still be this process (the modeler sends it)
    """
    _check_owner(actor)
    text, process_id, name = _read_process(xml, process_key)
    latest = defs.latest_definition(session, process_id, required=False)
    draft = ProcessDraft(
        process_key=process_id,
        name=name,
        xml=text,
        sha256=defs.sha256(text),
        base_version=latest.version if latest else None,
        author_id=actor.id if actor else None,
        author=actor,
        saved_at=utcnow(),
        note=(note or "").strip()[:2000],
    )
    session.add(draft)
    session.flush()
    audit.record(session, "definition_drafted", actor=actor, element_id=process_id, process=process_id,
                 draft=draft.id, sha256=draft.sha256, note=draft.note)
    return draft


def get_draft(session: Session, draft_id: int) -> ProcessDraft:
    draft = session.get(ProcessDraft, draft_id)
    if draft is None:
        raise NotFound(f"There is no draft {draft_id}.")
    return draft


def drafts_of(session: Session, process_key: str, limit: int = 50) -> list[ProcessDraft]:
    """The draft history of a process, newest first."""
    query = (select(ProcessDraft).where(ProcessDraft.process_key == process_key)
             .order_by(ProcessDraft.saved_at.desc(), ProcessDraft.id.desc()).limit(limit))
    return list(session.scalars(query))


def import_file(session: Session, actor: User | None, data: bytes, filename: str = "") -> tuple[
        ProcessDraft, ValidationReport]:
    """A ``.bpmn`` file from Camunda Modeler becomes a draft, with its validation report.

    :raises InvalidDefinition: when the file cannot even be read as BPMN (too large, not XML,
        DOCTYPE or entities, no process); nothing is stored then
    """
    _check_owner(actor)
    text, _process_id, _name = _read_process(data)
    report = validate(session, text)
    note = f"imported from {filename}" if filename else "imported"
    return save_draft(session, actor, text, note=note), report


# --- new processes --------------------------------------------------------------------------


def template_xml(key: str, name: str, role_key: str, role_name: str) -> str:
    """A minimal valid Camunda 7 diagram: one lane for ``role_key``, a start form with ``title``,
    one user task for the role, an end event."""
    n, lane, role = quoteattr(name), quoteattr(role_name), quoteattr(role_key)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN_NS}" xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" \
xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" xmlns:di="http://www.omg.org/spec/DD/20100524/DI" \
xmlns:camunda="{CAMUNDA_NS}" xmlns:modeler="http://camunda.org/schema/modeler/1.0" id="Definitions_{key}" \
targetNamespace="http://bpmn.io/schema/bpmn" exporter="deptflow" modeler:executionPlatform="Camunda Platform" \
modeler:executionPlatformVersion="7.22.0">
  <bpmn:collaboration id="Collaboration_{key}">
    <bpmn:participant id="Participant_{key}" name={n} processRef="{key}" />
  </bpmn:collaboration>
  <bpmn:process id="{key}" name={n} isExecutable="true">
    <bpmn:laneSet id="LaneSet_{key}">
      <bpmn:lane id="Lane_{role_key}" name={lane}>
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>review_request</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>end</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start" name="Request received" camunda:initiator="starter">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="title" label="Title" type="string">
            <camunda:validation>
              <camunda:constraint name="required" />
              <camunda:constraint name="maxlength" config="200" />
            </camunda:validation>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:outgoing>Flow_start_to_review_request</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:userTask id="review_request" name="Review the request" camunda:candidateGroups={role}>
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="review_notes" label="Notes" type="string">
            <camunda:properties>
              <camunda:property id="multiline" value="true" />
            </camunda:properties>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
      <bpmn:incoming>Flow_start_to_review_request</bpmn:incoming>
      <bpmn:outgoing>Flow_review_request_to_end</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end" name="Done">
      <bpmn:incoming>Flow_review_request_to_end</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="Flow_start_to_review_request" sourceRef="start" targetRef="review_request" />
    <bpmn:sequenceFlow id="Flow_review_request_to_end" sourceRef="review_request" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_{key}">
    <bpmndi:BPMNPlane id="BPMNPlane_{key}" bpmnElement="Collaboration_{key}">
      <bpmndi:BPMNShape id="Participant_{key}_di" bpmnElement="Participant_{key}" isHorizontal="true">
        <dc:Bounds x="160" y="80" width="600" height="200" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Lane_{role_key}_di" bpmnElement="Lane_{role_key}" isHorizontal="true">
        <dc:Bounds x="190" y="80" width="570" height="200" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="start_di" bpmnElement="start">
        <dc:Bounds x="252" y="162" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="228" y="205" width="84" height="14" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="review_request_di" bpmnElement="review_request">
        <dc:Bounds x="380" y="140" width="120" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="end_di" bpmnElement="end">
        <dc:Bounds x="612" y="162" width="36" height="36" />
        <bpmndi:BPMNLabel><dc:Bounds x="617" y="205" width="27" height="14" /></bpmndi:BPMNLabel>
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_start_to_review_request_di" bpmnElement="Flow_start_to_review_request">
        <di:waypoint x="288" y="180" />
        <di:waypoint x="380" y="180" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_review_request_to_end_di" bpmnElement="Flow_review_request_to_end">
        <di:waypoint x="500" y="180" />
        <di:waypoint x="612" y="180" />
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def create_process(session: Session, actor: User | None, key: str, name: str, role_key: str) -> ProcessDraft:
    """Start a new process from the template, as its first draft.

    :raises InvalidForm: the key is taken or not a name, the name is empty, the role unknown
    """
    _check_owner(actor)
    key, name = (key or "").strip(), " ".join((name or "").split())
    values = {"key": key, "name": name, "role": role_key}
    roles = defs.known_roles(session)
    errors = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = "Use letters, digits and _ only, starting with a letter (at most 100 characters)."
    elif session.get(Process, key) is not None or drafts_of(session, key, 1):
        errors["key"] = f"There is already a process “{key}”."
    if not name:
        errors["name"] = "Give the process a name."
    elif len(name) > 200:
        errors["name"] = "At most 200 characters."
    if role_key not in roles:
        errors["role"] = "Choose the role that starts the process."
    if errors:
        raise InvalidForm(errors, values)
    xml = template_xml(key, name, role_key, roles[role_key])
    return save_draft(session, actor, xml, note="new process from the template")


# --- publishing -----------------------------------------------------------------------------


class WarningsNotAcknowledged(InvalidDefinition):
    """The diagram is valid but has warnings that nobody has acknowledged yet."""

    def __init__(self, problems: list[Problem]):
        super().__init__(problems)
        self.args = ("The diagram has warnings; acknowledge them to publish:\n"
                     + "\n".join(f"  - {p}" for p in problems),)


@dataclass
class Publication:
    definition: ProcessDefinition
    created: bool
    report: ValidationReport


def publish(session: Session, actor: User | None, xml: str | bytes, *, note: str = "",
            acknowledge_warnings: bool = False, process_key: str | None = None) -> Publication:
    """Validate ``xml`` and publish it as the next version of its process.

    :param acknowledge_warnings: publish although the report has warnings
    :param process_key: when given, the diagram must still be this process (the modeler sends it), so
        that a changed process id cannot overwrite another process
    :returns: the version and whether it is new (identical content publishes nothing)
    :raises InvalidDefinition: the report has errors (its ``problems`` are the whole report); nothing is
        published
    :raises WarningsNotAcknowledged: warnings only, and ``acknowledge_warnings`` is false
    """
    _check_owner(actor)
    text, process_id, _name = _read_process(xml, process_key)
    report = validate(session, text)
    if report.errors:
        raise InvalidDefinition(report.problems)
    if report.warnings and not acknowledge_warnings:
        raise WarningsNotAcknowledged(report.warnings)
    before = defs.latest_definition(session, process_id, required=False)
    definition = defs.deploy(session, actor, text, note=(note or "").strip()[:2000])
    return Publication(definition, before is None or definition.id != before.id, report)


# --- the process page -----------------------------------------------------------------------


@dataclass
class VersionRow:
    definition: ProcessDefinition
    open_cases: int


@dataclass
class ProcessOverview:
    key: str
    title: str
    process: Process | None
    versions: list[VersionRow]
    drafts: list[ProcessDraft]

    @property
    def latest(self) -> ProcessDefinition | None:
        return self.versions[0].definition if self.versions else None

    @property
    def newer_draft(self) -> ProcessDraft | None:
        """The newest draft when it was saved after the latest version was published."""
        if self.drafts and (self.latest is None or self.drafts[0].saved_at > self.latest.published_at):
            return self.drafts[0]
        return None


def _open_cases_by_definition(session: Session, definition_ids: list[int]) -> dict[int, int]:
    if not definition_ids:
        return {}
    rows = session.execute(
        select(ProcessInstance.definition_id, func.count())
        .where(ProcessInstance.definition_id.in_(definition_ids), ProcessInstance.status.in_(MIGRATABLE))
        .group_by(ProcessInstance.definition_id)
    )
    return {definition_id: count for definition_id, count in rows}


def versions_of(session: Session, process_key: str) -> list[ProcessDefinition]:
    query = (select(ProcessDefinition).where(ProcessDefinition.process_key == process_key)
             .order_by(ProcessDefinition.version.desc()))
    return list(session.scalars(query))


def process_overview(session: Session, process_key: str) -> ProcessOverview:
    """Versions (who published what, when, with which note and hash; open cases on each) and drafts."""
    process = session.get(Process, process_key)
    versions = versions_of(session, process_key)
    drafts = drafts_of(session, process_key)
    if process is None and not drafts:
        raise NotFound(f"There is no process “{process_key}”.")
    counts = _open_cases_by_definition(session, [d.id for d in versions])
    title = process.title if process else drafts[0].name
    return ProcessOverview(process_key, title, process, [VersionRow(d, counts.get(d.id, 0)) for d in versions],
                           drafts)


@dataclass
class CatalogueRow:
    key: str
    title: str
    latest: ProcessDefinition | None
    open_cases: int
    last_draft: ProcessDraft | None


def catalogue(session: Session) -> list[CatalogueRow]:
    """Every process with its latest version, plus new processes that exist only as drafts."""
    rows: dict[str, CatalogueRow] = {}
    for process in defs.all_processes(session):
        rows[process.key] = CatalogueRow(process.key, process.title,
                                         defs.latest_definition(session, process.key, required=False), 0, None)
    open_counts = session.execute(
        select(ProcessInstance.process_key, func.count())
        .where(ProcessInstance.status.in_(MIGRATABLE)).group_by(ProcessInstance.process_key)
    )
    for key, count in open_counts:
        if key in rows:
            rows[key].open_cases = count
    newest = (select(ProcessDraft.process_key, func.max(ProcessDraft.id).label("id"))
              .group_by(ProcessDraft.process_key).subquery())
    for draft in session.scalars(select(ProcessDraft).join(newest, ProcessDraft.id == newest.c.id)):
        row = rows.setdefault(draft.process_key, CatalogueRow(draft.process_key, draft.name, None, 0, None))
        row.last_draft = draft
    return sorted(rows.values(), key=lambda r: r.title.lower())


@dataclass
class EditorSource:
    """What the modeler opens: a draft, else the latest version; with the process's overview."""

    overview: ProcessOverview
    draft: ProcessDraft | None
    definition: ProcessDefinition | None


def editor_source(session: Session, process_key: str, draft_id: int | None = None) -> EditorSource:
    """The diagram to open for ``process_key``: draft ``draft_id``, else the latest version, else
    (a process not published yet) its newest draft."""
    overview = process_overview(session, process_key)
    if draft_id is not None:
        draft = get_draft(session, draft_id)
        if draft.process_key != process_key:
            raise NotFound(f"Draft {draft_id} belongs to “{draft.process_key}”.")
        return EditorSource(overview, draft, None)
    if overview.latest is not None:
        return EditorSource(overview, None, overview.latest)
    return EditorSource(overview, overview.drafts[0], None)


def definition_by_version(session: Session, process_key: str, version: int) -> ProcessDefinition:
    definition = session.scalars(select(ProcessDefinition).where(
        ProcessDefinition.process_key == process_key, ProcessDefinition.version == version)).first()
    if definition is None:
        raise NotFound(f"“{process_key}” has no version {version}.")
    return definition


# --- diff -----------------------------------------------------------------------------------


@dataclass
class PropertyChange:
    name: str
    before: str | None
    after: str | None


@dataclass
class ElementChange:
    element_id: str
    kind: str  # added, removed, changed
    type: str
    name: str
    properties: list[PropertyChange] = field(default_factory=list)


@dataclass
class DefinitionDiff:
    old: ProcessDefinition
    new: ProcessDefinition
    changes: list[ElementChange]

    def ids(self, kind: str) -> list[str]:
        return [c.element_id for c in self.changes if c.kind == kind]


def _describe_field(node: etree._Element) -> str:
    parts = [node.get("type") or "string", node.get("label") or ""]
    if node.get("defaultValue"):
        parts.append(f"default {node.get('defaultValue')}")
    options = [v.get("id") or "" for v in node.iterfind("camunda:value", NS)]
    if options:
        parts.append("options " + "/".join(options))
    constraints = [c.get("name", "") + (f"={c.get('config')}" if c.get("config") else "")
                   for c in node.iterfind("camunda:validation/camunda:constraint", NS)]
    if constraints:
        parts.append(", ".join(constraints))
    props = [f"{p.get('id')}={p.get('value')}" for p in node.iterfind("camunda:properties/camunda:property", NS)]
    if props:
        parts.append(", ".join(props))
    return " · ".join(p for p in parts if p)


def _compact(node: etree._Element) -> str:
    return " ".join(etree.tostring(node, encoding="unicode", with_tail=False).split())


def _qualified(name: str) -> str:
    qname = etree.QName(name)
    prefix = {CAMUNDA_NS: "camunda:", "http://www.w3.org/2001/XMLSchema-instance": "xsi:"}.get(qname.namespace or "")
    return f"{prefix or ''}{qname.localname}" if qname.namespace else qname.localname


def _element_properties(node: etree._Element, lanes: dict[str, str]) -> dict[str, str]:
    """What a process owner would call the settings of one element (layout left out)."""
    props: dict[str, str] = {}
    for name, value in node.attrib.items():
        if name != "id":
            props[_qualified(name)] = value
    if node.get("id") in lanes:
        props["lane"] = lanes[node.get("id")]
    for child in node:
        kind = _local(child)
        if kind in ("conditionExpression", "documentation", "script", "text"):
            props[{"conditionExpression": "condition"}.get(kind, kind)] = (child.text or "").strip()
        elif kind.endswith("EventDefinition"):
            props["event"] = _compact(child)
        elif kind in ("multiInstanceLoopCharacteristics", "standardLoopCharacteristics"):
            props["loop"] = _compact(child)
        elif kind == "extensionElements":
            for ext in child:
                if _local(ext) == "formData":
                    for form_field in ext.iterfind("camunda:formField", NS):
                        props[f"form field “{form_field.get('id')}”"] = _describe_field(form_field)
                elif isinstance(ext.tag, str):
                    props[_qualified(ext.tag)] = _compact(ext)
    return props


def _elements(xml: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """id → (type, name, properties) of every BPMN element of the processes and collaborations."""
    root = defs.parse_xml(xml)
    lanes = {}
    for lane in root.iter(f"{{{BPMN_NS}}}lane"):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            lanes[(ref.text or "").strip()] = lane.get("name") or lane.get("id") or ""
    found = {}
    for top in list(root.iterfind("bpmn:process", NS)) + list(root.iterfind("bpmn:collaboration", NS)):
        for node in top.iter(f"{{{BPMN_NS}}}*"):
            kind = _local(node)
            if not node.get("id") or kind in ("laneSet", "conditionExpression", "documentation"):
                continue
            if kind.endswith("EventDefinition") or kind.endswith("LoopCharacteristics"):
                continue
            found[node.get("id")] = (kind, node.get("name") or "", _element_properties(node, lanes))
    return found


def diff_xml(old_xml: str, new_xml: str) -> list[ElementChange]:
    """Elements added, removed and changed between two diagrams; element ids tie them together."""
    old, new = _elements(old_xml), _elements(new_xml)
    changes = []
    for element_id, (kind, name, props) in new.items():
        if element_id not in old:
            changes.append(ElementChange(element_id, "added", kind, name))
            continue
        old_kind, _old_name, old_props = old[element_id]
        if old_kind != kind:
            props = {**props, "type": kind}
            old_props = {**old_props, "type": old_kind}
        differences = [PropertyChange(key, old_props.get(key), props.get(key))
                       for key in sorted(set(old_props) | set(props)) if old_props.get(key) != props.get(key)]
        if differences:
            changes.append(ElementChange(element_id, "changed", kind, name or _old_name, differences))
    for element_id, (kind, name, _props) in old.items():
        if element_id not in new:
            changes.append(ElementChange(element_id, "removed", kind, name))
    order = {"removed": 0, "changed": 1, "added": 2}
    return sorted(changes, key=lambda c: (order[c.kind], c.type, c.element_id))


def diff_versions(session: Session, process_key: str, old_version: int, new_version: int) -> DefinitionDiff:
    """What changed from one version of a process to another."""
    old = definition_by_version(session, process_key, old_version)
    new = definition_by_version(session, process_key, new_version)
    return DefinitionDiff(old, new, diff_xml(old.xml, new.xml))


# --- migration ------------------------------------------------------------------------------


@dataclass
class BlockingTask:
    element_id: str
    name: str
    state: str
    reason: str

    def __str__(self) -> str:
        return f"“{self.name}” ({self.element_id}, {self.state}): {self.reason}"


@dataclass
class MigrationCheck:
    instance: ProcessInstance
    blocking: list[BlockingTask]
    open_tasks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.blocking


class MigrationRefused(Conflict):
    """An instance cannot move to the new version; ``blocking`` says which of its tasks are in the way."""

    def __init__(self, instance: ProcessInstance, target: ProcessDefinition, blocking: list[BlockingTask]):
        self.instance = instance
        self.blocking = blocking
        lines = "; ".join(str(b) for b in blocking)
        super().__init__(f"“{instance.title}” cannot move to version {target.version}: {lines}")


def _spec_type(registry: Any, spec: Any) -> str | None:
    try:
        return registry.convert(spec).get("typename")
    except Exception:  # noqa: BLE001 - an unconvertible spec simply counts as a different type
        return None


def _plan(running: runtime.RunningInstance, target: defs.ParsedDefinition, version: int) -> tuple[
        Any, dict, list[BlockingTask]]:
    """SpiffWorkflow's diff of the instance against ``target`` and the tasks that block moving it."""
    registry = persistence.REGISTRY
    top_diff, sp_diffs = diff_workflow(registry, running.workflow, target.spec, target.subprocess_specs)
    blocking: list[BlockingTask] = []

    def check(workflow: Any, diff: Any) -> None:
        for task in workflow.get_tasks(skip_subprocesses=True):
            spec = task.task_spec
            element = getattr(spec, "bpmn_id", None)
            if element is None:  # Root, Start, End: SpiffWorkflow's own bookkeeping tasks
                continue
            name = getattr(spec, "bpmn_name", None) or element
            state = TaskState.get_name(task.state).lower()
            aligned = diff.alignment.get(task) if diff is not None else None
            if aligned is None:
                if task.has_state(ACTIVE):
                    blocking.append(BlockingTask(element, name, state, f"does not exist in version {version}"))
                elif task.has_state(TaskState.FINISHED_MASK):  # its state would no longer load
                    blocking.append(BlockingTask(element, name, state, f"done already, but removed in version "
                                                 f"{version}: the case's history would lose it"))
            elif task.has_state(ACTIVE) and _spec_type(registry, spec) != _spec_type(registry, aligned):
                blocking.append(BlockingTask(element, name, state, f"is a different kind of step in version {version}"))

    check(running.workflow, top_diff)
    for sp_id, sp in running.workflow.subprocesses.items():
        check(sp, sp_diffs.get(sp_id))
    return top_diff, sp_diffs, blocking


def _target(session: Session, instance: ProcessInstance, to_version: int | None) -> ProcessDefinition:
    target = (definition_by_version(session, instance.process_key, to_version) if to_version
              else defs.latest_definition(session, instance.process_key))
    if target.version <= instance.definition.version:
        raise Conflict(f"“{instance.title}” is on version {instance.definition.version} already; "
                       f"it can only move to a newer version.")
    return target


def check_migration(session: Session, instance: ProcessInstance, target: ProcessDefinition) -> MigrationCheck:
    """Whether ``instance`` can move to ``target``, without changing anything."""
    running = runtime.load_instance(session, instance)
    _top, _sps, blocking = _plan(running, defs.parsed(session, target), target.version)
    open_tasks = [t.task_spec.bpmn_name or t.task_spec.bpmn_id
                  for t in running.workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
                  if getattr(t.task_spec, "bpmn_id", None) and t.task_spec.manual]
    return MigrationCheck(instance, blocking, open_tasks)


@dataclass
class MigrationPreview:
    source: ProcessDefinition
    target: ProcessDefinition
    checks: list[MigrationCheck]

    @property
    def movable(self) -> list[MigrationCheck]:
        return [c for c in self.checks if c.ok]


def migration_preview(session: Session, actor: User | None, process_key: str, from_version: int,
                      to_version: int | None = None) -> MigrationPreview:
    """Every open case of ``from_version`` with what would block moving it to ``to_version`` (default: latest)."""
    _check_owner(actor)
    source = definition_by_version(session, process_key, from_version)
    target = (definition_by_version(session, process_key, to_version) if to_version
              else defs.latest_definition(session, process_key))
    if target.version <= source.version:
        raise Conflict(f"Version {source.version} is the latest; there is nothing to move its cases to.")
    instances = session.scalars(select(ProcessInstance).where(
        ProcessInstance.definition_id == source.id, ProcessInstance.status.in_(MIGRATABLE)
    ).order_by(ProcessInstance.id))
    return MigrationPreview(source, target, [check_migration(session, i, target) for i in instances])


def migrate_instance(session: Session, actor: User | None, instance_id: int,
                     to_version: int | None = None) -> ProcessInstance:
    """Move a running (or suspended) instance to a newer version of its process (default: the latest).

    Every active task must exist in the target version (SpiffWorkflow aligns tasks by element id,
    then by position in the graph). Ready tasks are re-predicted on the new diagram and their inbox
    rows keep their claim but take the new name, priority and roles; waiting timers keep their due
    time. The move is an audit event ``migrated`` of the instance.

    :raises MigrationRefused: with the blocking tasks; the instance is left as it was
    """
    _check_owner(actor)
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"There is no case {instance_id}.")
    if instance.status not in MIGRATABLE:
        raise Conflict(f"The case is {instance.status}; only open cases move to a new version.")
    target = _target(session, instance, to_version)
    source = instance.definition
    running = runtime.load_instance(session, instance)
    parsed = defs.parsed(session, target)
    top_diff, sp_diffs, blocking = _plan(running, parsed, target.version)
    if blocking:
        raise MigrationRefused(instance, target, blocking)

    workflow = running.workflow
    # Only ready tasks are re-predicted on the new diagram: waiting ones (timers, joins) keep their state,
    # so a running timer keeps its due time instead of starting over.
    migrate_workflow(top_diff, workflow, parsed.spec, reset_mask=TaskState.READY)
    for sp_id, sp in workflow.subprocesses.items():
        sp_spec = parsed.subprocess_specs.get(sp.spec.name)
        if sp_diffs.get(sp_id) is not None and sp_spec is not None:
            migrate_workflow(sp_diffs[sp_id], sp, sp_spec, reset_mask=TaskState.READY)
    workflow.subprocess_specs = parsed.subprocess_specs
    try:  # the saved state must load on the new version, or nothing changes
        persistence.load(persistence.dump(workflow), parsed)
    except Exception as exc:  # noqa: BLE001 - any failure to reload refuses the move
        raise MigrationRefused(instance, target, [BlockingTask(
            parsed.process_id, parsed.name, "state", f"the migrated state does not load: {exc}")]) from None

    instance.definition_id, instance.definition = target.id, target
    moved = runtime.RunningInstance(instance, workflow, parsed)
    audit.record(session, "migrated", instance=instance, actor=actor, element_id=parsed.process_id,
                 name=f"version {source.version} → version {target.version}",
                 **{"from": source.version, "to": target.version, "from_sha256": source.sha256,
                    "to_sha256": target.sha256})
    if instance.status == "running":
        moved.run_until_user_input_required(session)
    moved.save(session)
    _refresh_open_tasks(session, instance, moved)
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(f"“{instance.title}” changed while it was being moved; try again.") from None
    return instance


def _refresh_open_tasks(session: Session, instance: ProcessInstance, moved: runtime.RunningInstance) -> None:
    """Open inbox rows follow the new version: element id, name, priority, roles."""
    by_id = {str(t.id): t for t in moved.workflow.get_tasks(state=TaskState.READY, manual=True)}
    rows = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id, HumanTask.status == "open"))
    for row in rows:
        task = by_id.get(row.spiff_task_id)
        if task is None:
            continue
        row.element_id = task.task_spec.bpmn_id
        row.name = task.task_spec.bpmn_name or row.element_id
        info = moved.definition.user_tasks.get(row.element_id)
        if info is None:
            continue
        row.priority = info.priority
        if sorted(info.candidate_roles) != sorted(row.candidate_roles):
            row.candidate_roles = list(info.candidate_roles)
            projection.set_candidates(session, [row])
            if row.assignee is not None and not row.assignee.role_keys & set(info.candidate_roles):
                audit.record(session, "unclaimed", instance=instance, task=row, reason="role changed by migration",
                             former_assignee=row.assignee.username)
                row.assignee_id, row.assignee, row.claimed_at = None, None, None


@dataclass
class MigrationResult:
    source: ProcessDefinition
    target: ProcessDefinition
    migrated: list[ProcessInstance]
    refused: list[MigrationCheck]


def migrate_instances(session: Session, actor: User | None, process_key: str, from_version: int,
                      to_version: int | None = None) -> MigrationResult:
    """Move every open case of ``from_version`` that can move; list the others with their blocking tasks."""
    preview = migration_preview(session, actor, process_key, from_version, to_version)
    migrated, refused = [], [c for c in preview.checks if not c.ok]
    for check in preview.movable:
        try:
            migrated.append(migrate_instance(session, actor, check.instance.id, preview.target.version))
        except MigrationRefused as exc:
            refused.append(MigrationCheck(check.instance, exc.blocking, check.open_tasks))
    return MigrationResult(preview.source, preview.target, migrated, refused)
