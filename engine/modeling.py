"""Process owners' tools: drafts, new processes, publishing, and the process pages.

A diagram moves through stages. A **draft** is saved XML that nothing runs on; every save is kept,
so a process has a draft history. **Publishing** checks the diagram (:mod:`engine.validation`) and
makes version N+1 through :func:`engine.definitions.deploy`; errors block it, warnings must be
acknowledged. What changed between versions is :mod:`engine.process_versions`; moving running
cases to a newer version is :mod:`engine.instance_migration`.

Every function takes the caller's session and flushes; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, decisions
from . import definitions as defs
from .clock import utcnow
from .db import DecisionDefinition, Process, ProcessDefinition, ProcessDraft, ProcessInstance, User
from .definitions import BPMN_NS
from .errors import InvalidDefinition, InvalidForm, NotAllowed, NotFound, Problem
from .forms import CAMUNDA_NS
from .instance_migration import MIGRATABLE
from .owners import check_owner
from .process_settings import may_see
from .process_versions import versions_of
from .validation import KEY_PATTERN, FileCheck, ValidationReport, check_file, read_process, validate
from .vocabulary import EventKind

# --- drafts ---------------------------------------------------------------------------------


def save_draft(session: Session, actor: User | None, xml: str | bytes, *, note: str = "",
               process_key: str | None = None) -> ProcessDraft:
    """Store ``xml`` as a new draft of its process (the process id in the XML); nothing runs on it.

    The diagram need not be valid, only readable BPMN: a draft is work in progress.

    :param process_key: when given, the diagram must still be this process (the modeler sends it)
    """
    check_owner(actor)
    text, process_id, name = read_process(xml, process_key)
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
    audit.record(session, EventKind.DEFINITION_DRAFTED, actor=actor, element_id=process_id, process=process_id,
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
    check_owner(actor)
    text, _process_id, _name = read_process(data)
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
    check_owner(actor)
    key, name = (key or "").strip(), " ".join((name or "").split())
    values = {"key": key, "name": name, "role": role_key}
    roles = defs.known_roles(session)
    errors = {}
    if not KEY_PATTERN.match(key):
        errors["key"] = ("Use letters, digits, _, - and . only, starting with a letter or _ "
                         "(at most 100 characters).")
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
    #: the version of the process the editor holds (the file's first executable process)
    definition: ProcessDefinition
    created: bool
    report: ValidationReport
    #: every process of the file, each at its own version
    definitions: list[ProcessDefinition]


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
    check_owner(actor)
    text, process_id, _name = read_process(xml, process_key)
    report = validate(session, text)
    if report.errors:
        raise InvalidDefinition(report.problems)
    if report.warnings and not acknowledge_warnings:
        raise WarningsNotAcknowledged(report.warnings)
    before = defs.latest_definition(session, process_id, required=False)
    published = defs.deploy_file(session, actor, text, note=(note or "").strip()[:2000])
    definition = next(d for d in published if d.process_key == process_id)
    return Publication(definition, before is None or definition.id != before.id, report, published)


def check(session: Session, actor: User, xml: str | bytes) -> FileCheck:
    """What ``deptflow check`` says of ``xml`` against this database's roles and group mappings: the
    processes that would be published, what needs mapping, what blocks, warnings, notes. Publishes nothing.

    :raises NotAllowed: the actor may not model processes
    """
    check_owner(actor)
    return check_file(xml, defs.known_roles(session), defs.published_resolver(session), decisions.source(session))


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


def versions(session: Session, actor: User, process_key: str) -> list[VersionRow]:
    """The published versions of a process, newest first, with their open cases, for those who may
    open its page (holders of ``model``, its owner role, administrators).

    :raises NotFound: no such process
    :raises NotAllowed: the actor may not see the process's page
    """
    if session.get(Process, process_key) is None:
        raise NotFound(f"There is no process “{process_key}”.")
    if not may_see(session, actor, process_key):
        raise NotAllowed("Only process owners, the process's owner role and administrators see its versions.")
    published = versions_of(session, process_key)
    counts = _open_cases_by_definition(session, [d.id for d in published])
    return [VersionRow(d, counts.get(d.id, 0)) for d in published]


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


# --- DMN decisions --------------------------------------------------------------------------


def import_decisions(session: Session, actor: User | None, data: bytes | str, *, note: str = "",
                     decision_key: str | None = None) -> list[DecisionDefinition]:
    """Publish a DMN file (imported, or saved in the decision editor) as the next version of each of its
    decisions; decisions have no drafts: a file with errors publishes nothing.

    :param decision_key: when given, the file must still hold this decision (the editor sends it), so that
        a renamed decision cannot silently leave the one it was opened on behind
    :raises InvalidDefinition: every error of the file, with its decision id
    """
    check_owner(actor)
    if decision_key is not None:
        found, _problems = decisions.check(data)
        if found is not None and decision_key not in found.names:
            raise InvalidDefinition([Problem(f"the file no longer holds decision “{decision_key}”: rename it back, "
                                             "or download the file and import it as a new one", decision_key)])
    return decisions.deploy_decisions(session, actor, data, note=note)


def decision_template(key: str = "decision", name: str = "New decision") -> str:
    """A DMN 1.3 file with one empty UNIQUE decision table (one input, one output, one rule), for the
    decision editor's "new decision"."""
    k, n = quoteattr(key), quoteattr(name)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" \
xmlns:dmndi="https://www.omg.org/spec/DMN/20191111/DMNDI/" xmlns:dc="http://www.omg.org/spec/DMN/20180521/DC/" \
id="Definitions_{key}" name={n} namespace="http://camunda.org/schema/1.0/dmn">
  <decision id={k} name={n}>
    <decisionTable id="DecisionTable_{key}">
      <input id="Input_1" label="Input">
        <inputExpression id="InputExpression_1" typeRef="string"><text>input</text></inputExpression>
      </input>
      <output id="Output_1" label="Output" name="output" typeRef="string" />
      <rule id="Rule_1">
        <inputEntry id="UnaryTests_1"><text>-</text></inputEntry>
        <outputEntry id="LiteralExpression_1"><text>"yes"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
  <dmndi:DMNDI>
    <dmndi:DMNDiagram id="DMNDiagram_{key}">
      <dmndi:DMNShape id="DMNShape_{key}" dmnElementRef={k}>
        <dc:Bounds height="80" width="180" x="360" y="130" />
      </dmndi:DMNShape>
    </dmndi:DMNDiagram>
  </dmndi:DMNDI>
</definitions>
"""


@dataclass
class DecisionSource:
    """What the decision editor opens: a version of a decision, with every version of it."""

    key: str
    definition: DecisionDefinition
    versions: list[DecisionDefinition]


def decision_source(session: Session, key: str, version: int | None = None) -> DecisionSource:
    """Version ``version`` of decision ``key`` (the latest when not given), with its version history.

    :raises NotFound: no such decision or version
    """
    versions = decisions.versions_of(session, key)
    chosen = next((d for d in versions if version in (None, d.version)), None)
    if chosen is None:
        raise NotFound(f"Decision “{key}” has no version {version}.")
    return DecisionSource(key, chosen, versions)
