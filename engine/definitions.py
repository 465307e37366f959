"""Parse, validate, version and deploy BPMN definitions (Camunda 7 dialect).

A diagram is parsed once per content hash: the SpiffWorkflow spec and the metadata
deptflow needs (roles, forms, due dates) are cached, so running instances never
re-parse XML.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from threading import Lock
from time import monotonic
from typing import Any
from weakref import WeakKeyDictionary

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec
from SpiffWorkflow.bpmn.specs.defaults import NoneTask
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.exceptions import SpiffWorkflowException
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from . import audit, call_activity, core, decisions, juel, sandbox, subscriptions
from .clock import utcnow
from .db import DelegateMapping, GroupMapping, Process, ProcessDefinition, ProcessSchedule, Role, User
from .errors import DiagramTooLarge, InvalidDefinition, NotBpmn, NotFound, Problem, ScriptError
from .forms import CAMUNDA_NS, Form, FormField, parse_form
from .sql import run
from .vocabulary import EventKind

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
MAX_XML_BYTES = 2 * 1024 * 1024
_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_blank_text=False
)


@dataclass
class UserTaskInfo:
    """What deptflow reads from a user task besides what SpiffWorkflow runs."""

    element_id: str
    name: str
    candidate_roles: list[str]
    assignee: str | None
    due: str | None
    #: ``camunda:priority``; None when the diagram sets none (the process's default applies, else 50)
    priority: int | None
    documentation: str
    form: Form
    lane: str | None
    #: a ``bpmn:manualTask``: done outside deptflow, the inbox offers *Done* and no form
    manual: bool = False
    #: JUEL ``camunda:candidateGroups`` entries (``${approverGroups}``): resolved when the task becomes ready,
    #: each group through the role keys and group mappings (:func:`engine.inbox.resolve_dynamic`)
    dynamic_groups: list[str] = field(default_factory=list)
    #: the form was inferred from the conditions after the task (it has a ``camunda:formKey`` and no
    #: ``camunda:formData``): values it does not name are refused, never dropped
    inferred_form: bool = False
    #: ``camunda:priority`` when it is a JUEL expression (evaluated when the task becomes ready)
    priority_expression: str | None = None
    #: the task belongs to a process of another file that a call activity runs: “name version N”
    called: str | None = None


@dataclass(frozen=True)
class CallBinding:
    """Which published version of another file's process a call activity runs (Camunda 7's
    ``camunda:calledElementBinding``): ``latest`` (the default: the newest version when the case starts),
    ``version`` (:attr:`value` is the version number) or ``versionTag`` (the newest version whose process
    has ``camunda:versionTag`` :attr:`value`). ``deployment`` means the same file and never reaches here."""

    process_id: str
    mode: str
    value: str
    element_id: str

    def describe(self) -> str:
        return {"version": f" version {self.value}", "versionTag": f" with version tag “{self.value}”"}.get(
            self.mode, "")


#: finds the published version a call binds: its definition id and version, or why there is none
CallResolver = Callable[[CallBinding], "tuple[int, int] | str"]



class DeptflowParser(decisions.DeptflowParser):
    """SpiffWorkflow's Camunda parser with deptflow's business rule tasks (published decisions) and call
    activities (``camunda:in``/``camunda:out`` mappings)."""

    OVERRIDE_PARSER_CLASSES = {
        **decisions.DeptflowParser.OVERRIDE_PARSER_CLASSES,
        full_tag("callActivity"): (call_activity.MappedCallActivityParser, call_activity.MappedCallActivity)}


@dataclass
class ParsedDefinition:
    process_id: str
    name: str
    spec: BpmnProcessSpec
    subprocess_specs: dict[str, Any]
    start_form: Form
    start_documentation: str
    start_roles: list[str]
    initiator_variable: str | None
    #: (timeCycle | timeDate | timeDuration, ISO 8601 text, start event id) of a timer start event
    start_timer: tuple[str, str, str] | None
    user_tasks: dict[str, UserTaskInfo]
    element_names: dict[str, str] = field(default_factory=dict)
    #: (source id, target id) → (sequence flow id, condition text or None for a default/plain flow)
    flows: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict)
    #: boundary event id → (id of the activity it is attached to, whether it interrupts it)
    boundaries: dict[str, tuple[str, bool]] = field(default_factory=dict)
    #: external service task id → its topic: the case waits there for a worker (:mod:`engine.external_tasks`)
    external_topics: dict[str, str] = field(default_factory=dict)
    #: processes of other files that call activities run (called process id → how its version is chosen)
    calls: dict[str, CallBinding] = field(default_factory=dict)
    #: the published versions bound to :attr:`calls` (process key → definition id; transitively); empty until bound
    bound: dict[str, int] = field(default_factory=dict)
    #: message catch element id → message name: the case waits there for a message (:mod:`engine.messages`)
    message_catches: dict[str, str] = field(default_factory=dict)
    #: message start event id → message name: a message of that name starts a case
    message_starts: dict[str, str] = field(default_factory=dict)
    #: the start form was inferred (the start event has a ``camunda:formKey``): values it does not name are refused
    start_form_inferred: bool = False
    #: called process id → the variables its call activities' ``camunda:out`` take from it, typed by what the
    #: conditions after the call activity read (:func:`_compose` asks for them in the called process's forms)
    call_outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the user tasks with inferred forms that lead to an end event with no other user task between
    end_tasks: tuple[str, ...] = ()

    def step_name(self, element_id: str) -> str:
        return self.element_names.get(element_id) or element_id


def sha256(xml: str) -> str:
    return hashlib.sha256(xml.encode("utf-8")).hexdigest()


def parse_xml(xml: str | bytes) -> etree._Element:
    """Parse untrusted XML: size-limited, no DTD, no entities, no network."""
    raw = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(raw) > MAX_XML_BYTES:
        raise DiagramTooLarge([Problem(f"The file is larger than {MAX_XML_BYTES // 1024} KiB.")])
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise NotBpmn([Problem("DOCTYPE and entity declarations are not allowed in BPMN files.")])
    try:
        return etree.fromstring(raw, _SAFE_PARSER)
    except etree.XMLSyntaxError as exc:
        raise NotBpmn([Problem(f"The file is not well-formed XML: {exc}")]) from None


def _lanes_by_node(root: etree._Element) -> dict[str, str]:
    lanes = {}
    for lane in root.iterfind(".//bpmn:lane", NS):
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            if ref.text:
                lanes[ref.text.strip()] = lane.get("name") or lane.get("id") or ""
    return lanes


class Roles(dict[str, str]):
    """Role keys → display names, and the group mappings (group id → role key) through which lanes and
    candidate groups that name no role resolve, and the Java delegate mappings (a ``camunda:class`` name or
    delegate expression → the external task topic whose workers do that work, :mod:`engine.delegates`).
    A plain dict of roles is a ``Roles`` without mappings."""

    def __init__(self, names: dict[str, str], groups: dict[str, str] | None = None,
                 delegates: dict[str, str] | None = None):
        super().__init__(names)
        self.groups = dict(groups or {})
        self.delegates = dict(delegates or {})


def delegate_of(node: etree._Element) -> tuple[str, str] | None:
    """(attribute, value) of the Camunda 7 Java delegate ``node`` names (``class``, ``delegateExpression``,
    ``expression``), or None."""
    for attribute in DELEGATES:
        value = (node.get(f"{{{CAMUNDA_NS}}}{attribute}") or "").strip()
        if value:
            return attribute, value
    return None


def mapped_topic(node: etree._Element, roles: dict[str, str]) -> str | None:
    """The external task topic an administrator mapped the Java delegate of service task ``node`` to."""
    found = delegate_of(node)
    if found is None or etree.QName(node).localname != "serviceTask":
        return None
    return getattr(roles, "delegates", {}).get(found[1])


def group_key(text: str) -> str:
    """How a lane or group is compared with role keys, role names and mapped groups: case, spaces and
    ``_`` do not count (``Sales_Team`` is ``sales team``)."""
    return " ".join(text.lower().replace("_", " ").split())


def mapped_role(group: str, roles: dict[str, str]) -> str | None:
    """The role an administrator mapped ``group`` to, if any (:mod:`engine.groups`)."""
    wanted = group_key(group)
    return next((key for mapped, key in getattr(roles, "groups", {}).items() if group_key(mapped) == wanted), None)


def _role_for_lane(lane: str | None, roles: dict[str, str]) -> str | None:
    """Map a lane name to a role key: by key, or by the role's display name, else through a group mapping."""
    if not lane:
        return None
    wanted = group_key(lane)
    for key, name in roles.items():
        if wanted in (key.lower().replace("_", " "), " ".join(name.lower().split())):
            return key
    return mapped_role(lane, roles)


def _documentation(node: etree._Element) -> str:
    doc = node.find("bpmn:documentation", NS)
    return (doc.text or "").strip() if doc is not None else ""


#: The BPMN id of a process is its key in deptflow's URLs and tables: an XML NCName (letters, digits,
#: ``_``, ``-``, ``.``; not starting with a digit, ``-`` or ``.``), so never a ``/``, at most 100 characters.
KEY_PATTERN = re.compile(r"^[^\W\d][\w.\-]{0,99}$")

#: Elements that document a model and that Camunda 7 ignores when it runs one; SpiffWorkflow would want
#: an implementation for data stores and resolvable data objects, so they are left out of what it parses.
DOCUMENTATION_ONLY = ("dataStore", "dataStoreReference", "dataObject", "dataObjectReference", "dataInputAssociation",
                      "dataOutputAssociation", "ioSpecification", "group", "textAnnotation", "association", "category")
#: Camunda 7 delegate attributes: Java code deptflow cannot run
DELEGATES = ("class", "expression", "delegateExpression")


def is_executable(process: etree._Element) -> bool:
    return process.get("isExecutable", "true") == "true"


def parse_definition(xml: str | bytes, roles: dict[str, str], process_id: str | None = None,
                     resolve: CallResolver | None = None, decided: decisions.Decisions | None = None,
                     ) -> tuple[ParsedDefinition | None, list[Problem]]:
    """Parse ``xml`` and check it can run in deptflow.

    :param roles: known role keys → display names (for lanes and candidate groups)
    :param process_id: which executable process of the file; the first one when not given
    :param resolve: finds the published processes of other files that call activities name (see
        :func:`parse_definitions`)
    :param decided: the published decisions business rule tasks may call (none: calling one is an error)
    :returns: that process (``None`` when it cannot run) and every problem of the file
    """
    parsed, problems = parse_definitions(xml, roles, resolve, decided)
    wanted = [p for p in parsed if process_id in (None, p.process_id)]
    return (wanted[0] if wanted else None), problems


def parse_definitions(xml: str | bytes, roles: dict[str, str],
                      resolve: CallResolver | None = None, decided: decisions.Decisions | None = None,
                      ) -> tuple[list[ParsedDefinition], list[Problem]]:
    """Parse every executable process of ``xml``; a pool that is not executable is skipped with a note.

    Every problem of the file is reported, each with the id of its element: what deptflow cannot run is
    found on the XML before SpiffWorkflow parses it (SpiffWorkflow stops at its first error).

    A call activity may name a process of another file (:attr:`ParsedDefinition.calls`); the parsed
    definition leaves it out, :func:`bind` adds the published version a case runs.

    :param resolve: when given (publishing, ``deptflow check``), a called process of another file that it
        cannot find is an error of the call activity; when not (the cache), calls are not checked

    :returns: the processes SpiffWorkflow could parse (problems may still make them unfit to run) and the problems
    """
    root = parse_xml(xml)
    problems: list[Problem] = []
    processes = list(root.iterfind("bpmn:process", NS))
    executable = [p for p in processes if is_executable(p)]
    for process in processes:
        if not is_executable(process):
            problems.append(Problem(f"process “{process.get('name') or process.get('id')}” is not executable "
                                    "(isExecutable is not true): skipped", process.get("id"), "note"))
    if not executable:
        return [], [Problem("The file has no executable bpmn:process.")] + problems
    parser: CamundaParser | None = DeptflowParser(decided)
    try:
        parser.add_bpmn_xml(runnable_copy(root), filename=f"{executable[0].get('id')}.bpmn")
    except ValidationException as exc:
        problems.append(Problem(str(exc).split("\n")[0], getattr(exc, "id", None) or None))
        parser = None
    except (SpiffWorkflowException, KeyError, ValueError, AttributeError, TypeError, NameError) as exc:
        problems.append(Problem(f"SpiffWorkflow cannot read the file: {type(exc).__name__}: {exc}"))
        parser = None
    parsed = []
    for process in executable:
        result, process_problems = _parse_process(parser, root, process, roles, resolve, decided)
        problems.extend(process_problems + decisions.task_problems(process, decided))
        if result is not None:
            parsed.append(result)
    return parsed, problems


def runnable_copy(root: etree._Element) -> etree._Element:
    """``root`` without the elements that only document the model (:data:`DOCUMENTATION_ONLY`), and with
    business rule tasks that call no DMN decision as plain tasks: deptflow refuses them (:func:`unsupported`),
    and SpiffWorkflow would stop the whole file at the first one without a decision."""
    copy = deepcopy(root)
    for node in copy.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        if decisions.decision_ref(node) is None or any(_camunda(node, a) for a in DELEGATES):
            node.tag = f"{{{BPMN_NS}}}task"
    collection = f"{{{CAMUNDA_NS}}}collection"
    for node in copy.iter(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics"):
        name = call_activity.collection_name(node.get(collection) or "")
        if name:  # ``${reviewers}``: SpiffWorkflow reads the collection as a variable name
            node.set(collection, name)
    for node in list(copy.iter(f"{{{BPMN_NS}}}messageEventDefinition")):
        parent = node.getparent()
        if not node.get("messageRef") and parent is not None and etree.QName(parent).localname in _THROWS:
            parent.remove(node)  # a throw that names no message sends nothing: a none event (Camunda 7 alike)
    for name in DOCUMENTATION_ONLY:
        for node in list(copy.iter(f"{{{BPMN_NS}}}{name}")):
            parent = node.getparent()
            if parent is not None:
                parent.remove(node)
    return copy


def _parse_process(parser: CamundaParser | None, root: etree._Element, process: etree._Element,
                   roles: dict[str, str], resolve: CallResolver | None = None,
                   decided: decisions.Decisions | None = None) -> tuple[ParsedDefinition | None, list[Problem]]:
    process_id = process.get("id") or ""
    problems: list[Problem] = []
    if not KEY_PATTERN.match(process_id):
        problems.append(Problem(f"process id “{process_id}” cannot be a process key: at most 100 characters of "
                                "letters, digits, _, - and ., not starting with a digit, - or .", process_id or None))
    clashes = _id_clashes(process)
    if clashes:
        return None, problems + clashes
    lanes = _lanes_by_node(root)
    problems.extend(unsupported(process, roles))
    problems.extend(_loop_and_call_problems(process))

    spec, subprocess_specs, calls = None, {}, {}
    if parser is not None:
        try:
            spec = parser.get_spec(process_id)
            subprocess_specs = _subprocess_specs(parser, spec)
            calls, call_problems = _calls(root, {process_id, *subprocess_specs}, resolve)
            problems.extend(call_problems)
        except ValidationException as exc:
            problems.append(Problem(str(exc).split("\n")[0], getattr(exc, "id", None) or process_id))
            spec = None
        except (SpiffWorkflowException, KeyError, ValueError, AttributeError, TypeError, NameError) as exc:
            problems.append(Problem(f"SpiffWorkflow cannot parse the process: {type(exc).__name__}: {exc}",
                                    process_id))
            spec = None

    # the processes of this file that its call activities run are part of this one's steps
    called_here = [p for p in root.iterfind("bpmn:process", NS) if p.get("id") in subprocess_specs and p is not process]
    names = {n.get("id"): n.get("name") or n.get("id")
             for p in (*called_here, process) for n in p.iter() if n.get("id")}
    user_tasks: dict[str, UserTaskInfo] = {}
    for node in (n for p in (process, *called_here)
                 for n in p.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask")):
        if node.get("id") in user_tasks:
            continue
        info, task_problems = _user_task_info(node, lanes, roles)
        user_tasks[info.element_id] = info
        problems.extend(task_problems)
    problems.extend(infer_forms(process, user_tasks))

    start_events = [
        s for s in process.iterfind("bpmn:startEvent", NS)
        if not any(etree.QName(child).localname.endswith("EventDefinition") for child in s)
    ]
    start_timer = _start_timer(process)
    start_form, start_doc, start_roles, initiator, start_inferred = Form(), "", [], None, False
    if start_events:
        start = start_events[0]
        initiator = start.get(f"{{{CAMUNDA_NS}}}initiator") or None
        start_form, form_problems = parse_form(start)
        problems.extend(form_problems)
        if not start_form and _camunda(start, "formKey"):
            start_form, start_problem = infer_start_form(process, start, user_tasks, decided)
            start_inferred = True
            problems.append(start_problem)
        start_doc = _documentation(start)
        role = _role_for_lane(lanes.get(start.get("id") or ""), roles)
        start_roles = [role] if role else []
    elif start_timer is None:
        if not _message_start(process):  # a process that only a message starts has no one to start it
            problems.append(Problem("The process has no start event that deptflow can start (a plain start event or "
                                    "a timer).", process_id))
    elif schedule_after(start_timer, utcnow()) is None and start_timer[0] != "timeDate":
        problems.append(Problem(f"the start timer “{start_timer[1]}” is not an ISO 8601 cycle, date or duration",
                                start_timer[2]))

    problems.extend(_check_flows(process))
    if spec is None:
        return None, problems
    pass_through_plain_tasks([spec, *subprocess_specs.values()])
    messages = subscriptions.normalise(spec, subprocess_specs)
    flows = {}
    for flow in (f for p in (*called_here, process) for f in p.iterfind(".//bpmn:sequenceFlow", NS)):
        condition = flow.find("bpmn:conditionExpression", NS)
        text = (condition.text or "").strip() if condition is not None else None
        flows[(flow.get("sourceRef") or "", flow.get("targetRef") or "")] = (flow.get("id") or "", text or None)
    parsed = ParsedDefinition(
        process_id=process_id,
        name=process.get("name") or process_id,
        spec=spec,
        subprocess_specs=subprocess_specs,
        start_form=start_form,
        start_form_inferred=start_inferred,
        start_documentation=start_doc,
        start_roles=start_roles,
        initiator_variable=initiator,
        start_timer=start_timer,
        user_tasks=user_tasks,
        element_names=names,
        flows=flows,
        boundaries={
            b.get("id") or "": (b.get("attachedToRef") or "", b.get("cancelActivity", "true") != "false")
            for p in (*called_here, process) for b in p.iterfind(".//bpmn:boundaryEvent", NS)
        },
        external_topics=external_topics(root, roles),
        calls=calls,
        call_outputs=_call_outputs(process),
        end_tasks=_end_tasks(process, user_tasks),
        message_catches=messages.catches,
        message_starts=messages.starts,
    )
    return parsed, problems


def _subprocess_specs(parser: CamundaParser, spec: BpmnProcessSpec) -> dict[str, Any]:
    """The specs of the sub-processes and called processes of this file that ``spec`` runs (transitively);
    a called process of another file is left out (:func:`_calls`)."""
    found: dict[str, Any] = {}
    todo = [spec]
    while todo:
        for task_spec in todo.pop().task_specs.values():
            if isinstance(task_spec, SubWorkflowTask) and task_spec.spec not in found:
                found[task_spec.spec] = parser.get_spec(task_spec.spec, required=False)
                if found[task_spec.spec] is not None:
                    todo.append(found[task_spec.spec])
    return {name: sub for name, sub in found.items() if sub is not None}


def _calls(root: etree._Element, runs: set[str], resolve: CallResolver | None
           ) -> tuple[dict[str, CallBinding], list[Problem]]:
    """The call activities of the processes ``runs`` (ids) that name a process of another file."""
    calls: dict[str, CallBinding] = {}
    problems: list[Problem] = []
    in_file = {p.get("id") for p in root.iterfind("bpmn:process", NS)}
    for node in root.iter(f"{{{BPMN_NS}}}callActivity"):
        called, element_id = (node.get("calledElement") or "").strip(), node.get("id") or ""
        owner = next((a.get("id") for a in node.iterancestors(f"{{{BPMN_NS}}}process")), None)
        if not called or called in in_file or owner not in runs:
            continue
        mode = _camunda(node, "calledElementBinding") or "latest"
        value = {"version": _camunda(node, "calledElementVersion"),
                 "versionTag": _camunda(node, "calledElementVersionTag")}.get(mode) or ""
        if mode == "deployment":
            problems.append(Problem(f"call activity calls “{called}” with binding “deployment”, but this file has "
                                    "no such process: add it to the file or bind the latest version", element_id))
            continue
        if mode not in ("latest", "version", "versionTag"):
            problems.append(Problem(f"call activity binding “{mode}” is not one of latest, deployment, version, "
                                    "versionTag", element_id))
            continue
        if mode == "version" and not value.isdigit():
            problems.append(Problem(f"call activity binds version “{value}” of “{called}”: not a version number",
                                    element_id))
            continue
        binding = CallBinding(called, mode, value, element_id)
        other = calls.get(called)
        if other is not None and (other.mode, other.value) != (mode, value):
            problems.append(Problem(f"call activities {other.element_id} and {element_id} call “{called}” with "
                                    "different bindings: bind them alike", element_id))
            continue
        calls[called] = binding
        if resolve is not None:
            found = resolve(binding)
            if isinstance(found, str):
                problems.append(Problem(f"call activity calls “{called}”{binding.describe()}: {found}",
                                        element_id))
    return calls, problems


def _loop_and_call_problems(process: etree._Element) -> list[Problem]:
    """Multi-instance loops over a collection need a variable name for it and an element variable; call
    activities need well-formed mappings."""
    problems = []
    for node in process.iter(f"{{{BPMN_NS}}}multiInstanceLoopCharacteristics"):
        owner = node.getparent()
        element_id = owner.get("id") if owner is not None else None
        collection = _camunda(node, "collection")
        if collection is None:
            continue
        if call_activity.collection_name(collection) is None:
            problems.append(Problem(f"multi-instance collection “{collection}” is not a variable name: compute the "
                                    "list in a script task before, then name it (${{list}} or list)", element_id))
        element = _camunda(node, "elementVariable")
        if not element or not call_activity.NAME.match(element):
            problems.append(Problem("multi-instance over a collection needs camunda:elementVariable, the variable "
                                    "each instance sees its element in", element_id))
    for node in process.iter(f"{{{BPMN_NS}}}callActivity"):
        for message in call_activity.mapping_problems(node):
            problems.append(Problem(message, node.get("id")))
    return problems


def pass_through_plain_tasks(specs: list[Any]) -> None:
    """A plain ``bpmn:task`` does nothing and moves on, as in Camunda 7 (SpiffWorkflow waits for someone)."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            if isinstance(task_spec, NoneTask):
                task_spec.manual = False


def external_topics(root: etree._Element, roles: dict[str, str] | None = None) -> dict[str, str]:
    """The external service tasks of the file (called processes included) and their topics: those with
    ``camunda:type="external"``, and those whose Java delegate an administrator mapped to a topic."""
    topics = {}
    for node in root.iter(f"{{{BPMN_NS}}}serviceTask"):
        if _camunda(node, "type") == "external":
            topics[node.get("id") or ""] = (_camunda(node, "topic") or "").strip()
        elif roles is not None and (topic := mapped_topic(node, roles)):
            topics[node.get("id") or ""] = topic
    return topics


def _camunda(node: etree._Element, attribute: str) -> str | None:
    return node.get(f"{{{CAMUNDA_NS}}}{attribute}")


def unsupported(process: etree._Element, roles: dict[str, str] | None = None) -> list[Problem]:
    """What deptflow cannot run in ``process``, each naming its element (all of them, not the first).

    A service task's Java delegate that an administrator mapped to an external task topic (``roles.delegates``)
    runs as an external task of that topic. ``camunda:async`` is accepted and ignored: deptflow saves the case
    at every wait state anyway, and an external task is done by a worker outside the step."""
    problems: list[Problem] = []
    script_task = "it needs a deptflow equivalent: a script task"
    for node in process.iter(f"{{{BPMN_NS}}}*"):
        kind, element_id = etree.QName(node).localname, node.get("id")
        if kind == "sendTask" and _message_of(node) is not None and not _implemented(node):
            problems.extend(_message_problems(node))
        elif kind in ("serviceTask", "sendTask", "businessRuleTask"):
            delegate = next((a for a in DELEGATES if _camunda(node, a)), None)
            if delegate and roles is not None and mapped_topic(node, roles):
                continue  # an external task of the mapped topic
            if delegate and kind == "serviceTask":
                value = (_camunda(node, delegate) or "").strip()
                problems.append(Problem(f"{kind} calls Java (camunda:{delegate} “{value}”): map it to an external "
                                        "task topic (an administrator's Java delegates page) for a worker to do, or "
                                        "make it a script task", element_id, kind="mapping", delegate=value))
            elif delegate:
                problems.append(Problem(f"{kind} calls Java (camunda:{delegate} “{_camunda(node, delegate)}”): "
                                        + script_task, element_id, kind="mapping"))
            elif _camunda(node, "type") == "external":
                if kind != "serviceTask":
                    problems.append(Problem(f"{kind} is an external task (topic “{_camunda(node, 'topic')}”): "
                                            "deptflow's workers take external service tasks only", element_id,
                                            "warning"))
                elif not (_camunda(node, "topic") or "").strip():
                    problems.append(Problem("external service task has no camunda:topic: no worker could fetch it",
                                            element_id))
            elif kind == "businessRuleTask" and _camunda(node, "decisionRef"):
                pass  # a DMN decision: engine.decisions.task_problems checks it is published
            elif node.find(".//camunda:connector", NS) is not None:
                problems.append(Problem(f"{kind} uses a Camunda connector: " + script_task, element_id,
                                        kind="mapping"))
            else:
                problems.append(Problem(f"{kind} has no implementation: nothing would ever complete it; make it a "
                                        "script task or a plain task", element_id))
        elif (kind == "userTask" and _camunda(node, "formKey")
              and node.find("bpmn:extensionElements/camunda:formData", NS) is not None):
            problems.append(Problem(f"user task names an external form (camunda:formKey “{_camunda(node, 'formKey')}”)"
                                    ": deptflow shows its camunda:formData fields instead", element_id, "warning"))
        elif kind in ("messageEventDefinition", "receiveTask"):
            problems.extend(_message_problems(node))
        elif kind == "scriptTask" and (node.get("scriptFormat") or "python").lower() != "python":
            problems.append(Problem(f"script in {node.get('scriptFormat')}: deptflow runs Python scripts; "
                                    "it needs a deptflow equivalent", element_id, kind="mapping"))
    return problems


def _message_of(node: etree._Element) -> str | None:
    """The ``messageRef`` of a receive or send task (on it or on its event definition), or of a message event
    definition; ``""`` when the element is about a message but names none, None when it is not about one."""
    if node.get("messageRef") is not None:
        return node.get("messageRef") or ""
    definition = node.find("bpmn:messageEventDefinition", NS)
    if definition is not None:
        return definition.get("messageRef") or ""
    return "" if etree.QName(node).localname in ("receiveTask", "messageEventDefinition") else None


def _implemented(node: etree._Element) -> bool:
    """A Camunda 7 implementation (Java, an external task, a connector) on a task: it is not deptflow's message."""
    return (any(_camunda(node, a) for a in DELEGATES) or _camunda(node, "type") is not None
            or node.find(".//camunda:connector", NS) is not None)


#: the events that send a message
_THROWS = ("intermediateThrowEvent", "endEvent")


def _message_problems(node: etree._Element) -> list[Problem]:
    """A message element must name a ``bpmn:message`` that has a name: correlation goes by that name."""
    owner = node.getparent() if etree.QName(node).localname == "messageEventDefinition" else node
    if owner is None:
        return []
    if etree.QName(node).localname == "messageEventDefinition" and node.getparent() is not None \
            and etree.QName(owner).localname in ("receiveTask", "sendTask"):
        return []  # the task itself is checked
    what = etree.QName(owner).localname
    ref = _message_of(node)
    if not ref and what in _THROWS:
        return [Problem(f"{what} sends no message (no messageRef): it passes like a none event; choose a message in "
                        "the modeler for another case to receive it", owner.get("id"), "warning")]
    if not ref:
        return [Problem(f"{what} has no message (messageRef): choose or create a message in the modeler, whose "
                        "name senders and receivers share", owner.get("id"))]
    message = next((m for m in node.getroottree().getroot().iterfind("bpmn:message", NS) if m.get("id") == ref), None)
    if message is None:
        return [Problem(f"{what} refers to message “{ref}”, which the file does not define", owner.get("id"))]
    if not (message.get("name") or "").strip():
        return [Problem(f"message “{ref}” has no name: correlation goes by the message's name", owner.get("id"))]
    return []


def _message_start(process: etree._Element) -> bool:
    """Whether a start event of ``process`` is a message start (a message starts its cases)."""
    return any(s.find("bpmn:messageEventDefinition", NS) is not None for s in process.iterfind("bpmn:startEvent", NS))


def _id_clashes(process: etree._Element) -> list[Problem]:
    """Extension elements (form fields, enum values, properties) must not reuse a BPMN element's id:
    SpiffWorkflow looks elements up by id anywhere in the document and would pick the wrong one."""
    bpmn_ids = {n.get("id") for n in process.iter(f"{{{BPMN_NS}}}*") if n.get("id")}
    problems = []
    for node in process.iter(f"{{{CAMUNDA_NS}}}*"):
        if node.get("id") in bpmn_ids:
            owner = next((a.get("id") for a in node.iterancestors(f"{{{BPMN_NS}}}*") if a.get("id")), None)
            tag = etree.QName(node).localname
            problems.append(Problem(f"camunda:{tag} id “{node.get('id')}” is also the id of a BPMN element; "
                                    "rename one of them", owner))
    return problems


def _user_task_info(
    node: etree._Element, lanes: dict[str, str], roles: dict[str, str]
) -> tuple[UserTaskInfo, list[Problem]]:
    element_id = node.get("id") or ""
    problems: list[Problem] = []
    groups = node.get(f"{{{CAMUNDA_NS}}}candidateGroups") or ""
    named, dynamic = [], []
    for entry in list_entries(groups):
        (dynamic if juel.is_expression(entry) else named).append(entry)
    for expression in dynamic:
        problems.extend(_juel_problems(expression, element_id, "camunda:candidateGroups"))
    # a group is a role by its key, else through a mapping; one that is neither is reported and left out
    resolved = [g if g in roles else mapped_role(g, roles) for g in named]
    candidate_roles = list(dict.fromkeys(role for role in resolved if role))
    for group, role in zip(named, resolved, strict=True):
        if role is None:
            problems.append(Problem(f"candidate group “{group}” is not a known role: map it to a role (an "
                                    "administrator's Groups page) or add the role", element_id, kind="mapping",
                                    group=group))
    lane = lanes.get(element_id)
    if not named and not dynamic:
        role = _role_for_lane(lane, roles)
        if role:
            candidate_roles = [role]
    assignee = node.get(f"{{{CAMUNDA_NS}}}assignee") or None
    for attribute in ("assignee", "candidateUsers", "dueDate", "followUpDate", "priority"):
        value = _camunda(node, attribute)
        if value and juel.is_expression(value):
            problems.extend(_juel_problems(value, element_id, f"camunda:{attribute}"))
    if _camunda(node, "candidateUsers"):
        problems.append(Problem(f"camunda:candidateUsers “{_camunda(node, 'candidateUsers')}” is not used: deptflow "
                                "offers tasks to roles (candidate groups, lanes) or to one assignee", element_id,
                                "warning"))
    if not candidate_roles and not named and not dynamic and not assignee:
        where = f"lane “{lane}” is not a known role or mapped group" if lane else "it is in no lane"
        what = "manual task" if etree.QName(node).localname == "manualTask" else "user task"
        problems.append(Problem(f"{what} has no role, so nobody could do it: no candidate groups, no assignee, "
                                f"and {where}", element_id, kind="mapping" if lane else "", group=lane or ""))
    priority_text = node.get(f"{{{CAMUNDA_NS}}}priority")
    priority = None
    if priority_text and not juel.is_expression(priority_text):
        try:
            priority = int(priority_text)
        except ValueError:
            problems.append(Problem(f"priority “{priority_text}” is not a whole number", element_id, "warning"))
    due = node.get(f"{{{CAMUNDA_NS}}}dueDate") or None
    if due and not juel.is_expression(due) and due_at(due, utcnow()) is None:
        problems.append(Problem(f"due date “{due}” is not an ISO 8601 date or duration", element_id))
    form, form_problems = parse_form(node)
    problems.extend(form_problems)
    info = UserTaskInfo(
        element_id=element_id,
        name=node.get("name") or element_id,
        candidate_roles=candidate_roles,
        assignee=assignee,
        due=due,
        priority=priority,
        documentation=_documentation(node),
        form=form,
        lane=lane,
        manual=etree.QName(node).localname == "manualTask",
        dynamic_groups=dynamic,
        priority_expression=priority_text if priority_text and juel.is_expression(priority_text) else None,
    )
    return info, problems


def list_entries(text: str) -> list[str]:
    """The entries of a comma list such as ``camunda:candidateGroups``; a comma inside ``${…}`` does not split."""
    entries, current, depth = [], [], 0
    for i, char in enumerate(text):
        if char in "{" and i and text[i - 1] in "$#":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if char == "," and not depth:
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    entries.append("".join(current))
    return [e.strip() for e in entries if e.strip()]


def _juel_problems(expression: str, element_id: str, where: str) -> list[Problem]:
    """A JUEL expression deptflow cannot evaluate is a deploy error naming the element and the expression."""
    try:
        juel.check(expression)
    except juel.JuelError as exc:
        return [Problem(f"{where}: {exc}", element_id)]
    return []


def infer_forms(process: etree._Element, user_tasks: dict[str, UserTaskInfo]) -> list[Problem]:
    """A user task with a ``camunda:formKey`` (an embedded or external form deptflow cannot show) and no
    ``camunda:formData`` gets a form built from the variables the JUEL conditions after it read: on its own
    outgoing flows, or on those of the gateway it leads to — and the variables that the next user task's
    ``camunda:assignee``/``candidateUsers``/``candidateGroups`` expressions read when nothing else in the process
    sets them (Camunda's reviewInvoice: the embedded form sets ``reviewer``, the next task's assignee). Each field
    is typed from its use (:func:`engine.juel.variable_types`) and required, so a decision is never taken by an
    empty field."""
    problems = []
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow)
    gateways = {g.get("id") for g in process.iter(f"{{{BPMN_NS}}}exclusiveGateway", f"{{{BPMN_NS}}}inclusiveGateway")}
    tasks_by_id = {t.get("id"): t for t in process.iter(f"{{{BPMN_NS}}}userTask")}
    for node in process.iter(f"{{{BPMN_NS}}}userTask"):
        info = user_tasks.get(node.get("id") or "")
        if info is None or info.form or not _camunda(node, "formKey"):
            continue
        own = outgoing.get(info.element_id, [])
        flows = own + [after for flow in own if flow.get("targetRef") in gateways
                       for after in outgoing.get(flow.get("targetRef") or "", [])]
        types = _condition_types(flows)
        # who does the next task: ``camunda:assignee="${reviewer}"`` after an external form that sets ``reviewer``
        written = _written_variables(process)
        for flow in flows:
            target = tasks_by_id.get(flow.get("targetRef") or "")
            for attribute in ("assignee", "candidateUsers", "candidateGroups"):
                text = _camunda(target, attribute) if target is not None else None
                if text and juel.is_expression(text):
                    try:
                        names = juel.variables(text)
                    except juel.JuelError:
                        continue  # reported on the task
                    for name in names:
                        if name not in written and name not in ("starter", "initiator"):
                            types.setdefault(name, "string")
        info.form = Form([FormField(id=name, label=name.replace("_", " ").capitalize(), type=kind,
                                    constraints={"required": None}) for name, kind in types.items()])
        info.inferred_form = True
        fields = ", ".join(f"{name} ({kind})" for name, kind in types.items())
        problems.append(Problem(
            f"user task uses an external form (camunda:formKey “{_camunda(node, 'formKey')}”): deptflow offers a form "
            + (f"built from what the conditions after it read: {fields}" if fields else
               "with no fields (no condition after it reads a variable); add camunda:formData in the modeler for more"),
            info.element_id, "warning"))
    return problems


def _condition_types(flows: list[etree._Element]) -> dict[str, str]:
    """The variables the JUEL conditions of ``flows`` read, typed from their use (:func:`juel.variable_types`)."""
    types: dict[str, str] = {}
    for flow in flows:
        condition = flow.find("bpmn:conditionExpression", NS)
        text = (condition.text or "").strip() if condition is not None else ""
        if text and juel.is_expression(text):
            try:
                for name, kind in juel.variable_types(text).items():
                    types[name] = types.get(name) or kind
            except juel.JuelError:
                continue  # reported on the flow
    return types


def _label(name: str) -> str:
    """``invoiceCategory`` and ``invoice_category`` read “Invoice category”."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(words).capitalize() if words else name


def infer_start_form(process: etree._Element, start: etree._Element, user_tasks: dict[str, UserTaskInfo],
                     decided: decisions.Decisions | None) -> tuple[Form, Problem]:
    """The form of a start event with a ``camunda:formKey`` (Camunda's embedded start form) and no
    ``camunda:formData``: the variables the process reads and that nothing in it sets (no form field, inferred
    task form, decision result, call activity output, initiator, multi-instance element):

    * what the business rule tasks' decisions read (their input expressions that are a variable name, and those
      of the decisions they require), typed by the input's ``typeRef`` — required;
    * what the JUEL conditions of the process read, typed from their use — required;
    * what the call activities hand on to the called process (``camunda:in source``) — optional strings, as
      Camunda passes an absent variable on as null.

    The fields come in that order. Values the form does not name are refused (:attr:`ParsedDefinition.
    start_form_inferred`), never dropped."""
    written = _written_variables(process) | {f.id for info in user_tasks.values() for f in info.form.fields}
    fields: dict[str, FormField] = {}

    def add(name: str, kind: str, required: bool) -> None:
        if name in written or name in fields or not name.isidentifier() or name.startswith("_"):
            return
        fields[name] = FormField(id=name, label=_label(name), type=kind,
                                 constraints={"required": None} if required else {})

    for node in process.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        ref = decisions.decision_ref(node)
        engine = decided.engine(*ref) if decided is not None and ref is not None else None
        if engine is not None:
            written.update(engine.output_names)
            for name, kind in decisions.input_variables(engine).items():
                add(name, kind, True)
    for name, kind in _condition_types(list(process.iterfind(".//bpmn:sequenceFlow", NS))).items():
        add(name, kind or "string", True)
    for node in process.iter(f"{{{BPMN_NS}}}callActivity"):
        for mapping in call_activity.mappings(node, "in"):
            if mapping.source and not mapping.everything:
                add(mapping.source, "string", False)
    form = Form(list(fields.values()))
    described = ", ".join(f"{f.id} ({f.type}{'' if f.required else ', optional'})" for f in form.fields)
    return form, Problem(
        f"the start event uses an external form (camunda:formKey “{_camunda(start, 'formKey')}”): deptflow offers a "
        + (f"form built from what the process reads and nothing in it sets: {described}" if described else
           "form with no fields (the process reads no variable it does not set); add camunda:formData for more"),
        start.get("id"), "warning")


def _call_outputs(process: etree._Element) -> dict[str, dict[str, str]]:
    """Called process id → the variables its call activities' ``camunda:out`` take from it (by source name),
    typed by what the conditions after the call activity (on its flows and the gateway's after them) read."""
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow)
    found: dict[str, dict[str, str]] = {}
    for node in process.iter(f"{{{BPMN_NS}}}callActivity"):
        called = (node.get("calledElement") or "").strip()
        own = outgoing.get(node.get("id") or "", [])
        after = [later for flow in own for later in outgoing.get(flow.get("targetRef") or "", [])]
        types = _condition_types(own + after)
        for mapping in call_activity.mappings(node, "out"):
            if called and mapping.source and mapping.target and not mapping.everything:
                found.setdefault(called, {})[mapping.source] = types.get(mapping.target) or "string"
    return found


def _end_tasks(process: etree._Element, user_tasks: dict[str, UserTaskInfo]) -> tuple[str, ...]:
    """The user tasks with inferred forms from which an end event is reached without another user task."""
    outgoing: dict[str, list[str]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow.get("targetRef") or "")
    kinds = {n.get("id"): etree.QName(n).localname for n in process.iter() if n.get("id")}
    ends = []
    for element_id, info in user_tasks.items():
        if not info.inferred_form:
            continue
        seen, todo = set(), list(outgoing.get(element_id, []))
        while todo:
            current = todo.pop()
            if current in seen or kinds.get(current) in ("userTask", "manualTask"):
                continue
            seen.add(current)
            if kinds.get(current) == "endEvent":
                ends.append(element_id)
                break
            todo.extend(outgoing.get(current, []))
    return tuple(ends)


def with_call_outputs(child: ParsedDefinition, wanted: dict[str, str]) -> dict[str, UserTaskInfo]:
    """The user tasks of called process ``child``, those that end it with inferred forms asking also for what
    the caller's ``camunda:out`` takes from it (``wanted``: variable → type) and the child sets nowhere —
    Camunda's reviewInvoice sets ``clarified`` in its embedded form, which only the calling invoice reads."""
    tasks = dict(child.user_tasks)
    for element_id in child.end_tasks:
        info = tasks[element_id]
        have = {f.id for f in info.form.fields}
        written = {f.id for t in child.user_tasks.values() for f in t.form.fields}
        extra = [FormField(id=name, label=_label(name), type=kind, constraints={"required": None})
                 for name, kind in wanted.items() if name not in have and name not in written and name.isidentifier()]
        if extra:
            tasks[element_id] = replace(info, form=Form([*info.form.fields, *extra]))
    return tasks


def _written_variables(process: etree._Element) -> set[str]:
    """The variables some element of ``process`` sets by name: form fields, decision results, initiators,
    multi-instance element variables, call activity outputs."""
    written = {field.get("id") or "" for field in process.iter(f"{{{CAMUNDA_NS}}}formField")}
    for node in process.iter():
        for attribute in ("resultVariable", "initiator", "elementVariable"):
            if node.get(f"{{{CAMUNDA_NS}}}{attribute}"):
                written.add(node.get(f"{{{CAMUNDA_NS}}}{attribute}") or "")
    written |= {out.get("target") or "" for out in process.iter(f"{{{CAMUNDA_NS}}}out")}
    return written


def _check_flows(process: etree._Element) -> list[Problem]:
    """Exclusive gateways need conditions or a default; conditions and scripts must compile in the sandbox."""
    problems = []
    outgoing: dict[str, list[etree._Element]] = {}
    for flow in process.iterfind(".//bpmn:sequenceFlow", NS):
        outgoing.setdefault(flow.get("sourceRef") or "", []).append(flow)
        condition = flow.find("bpmn:conditionExpression", NS)
        if condition is not None and juel.is_expression(condition.text):
            problems.extend(_juel_problems(condition.text.strip(), flow.get("id") or "", "condition"))
        elif condition is not None and (condition.text or "").strip():
            try:
                sandbox.compile_expression(condition.text)
            except ScriptError as exc:
                problems.append(Problem(f"condition “{condition.text.strip()}” is refused: {exc}", flow.get("id")))
            except SyntaxError as exc:
                problems.append(Problem(f"condition “{condition.text.strip()}” is not valid: {exc}", flow.get("id")))
    for task in process.iterfind(".//bpmn:scriptTask", NS):
        script = task.find("bpmn:script", NS)
        if script is None or not (script.text or "").strip():
            continue
        try:
            sandbox.compile_script(script.text)
        except (ScriptError, SyntaxError) as exc:
            problems.append(Problem(f"the script is refused: {exc}", task.get("id")))
    for gateway in process.iterfind(".//bpmn:exclusiveGateway", NS):
        flows = outgoing.get(gateway.get("id") or "", [])
        if len(flows) < 2:
            continue
        default = gateway.get("default")
        for flow in flows:
            has_condition = flow.find("bpmn:conditionExpression", NS) is not None
            if not has_condition and flow.get("id") != default:
                problems.append(Problem("outgoing flow of a decision has neither a condition nor is it the default",
                                        flow.get("id")))
    return problems


def _start_timer(process: etree._Element) -> tuple[str, str, str] | None:
    for start in process.iterfind("bpmn:startEvent", NS):
        timer = start.find("bpmn:timerEventDefinition", NS)
        if timer is None:
            continue
        for kind in ("timeCycle", "timeDate", "timeDuration"):
            node = timer.find(f"bpmn:{kind}", NS)
            if node is not None and (node.text or "").strip():
                return kind, node.text.strip(), start.get("id") or ""
    return None


def schedule_after(start_timer: tuple[str, str, str], after: datetime) -> datetime | None:
    """The first moment strictly after ``after`` (naive UTC) at which a timer start event fires.

    ``R[n]/start/period`` cycles step by calendar periods (P1M is the same day next month);
    a date fires once; a duration fires once, that long after ``after``.
    """
    kind, text, _element = start_timer
    try:
        if kind == "timeDuration":
            return due_at(text, after)
        if kind == "timeDate":
            moment = due_at(text, after)
            return moment if moment is not None and moment > after else None
        parts = text.upper().split("/")
        if len(parts) != 3 or not parts[0].startswith("R"):
            return None
        cycles = int(parts[0][1:]) if parts[0][1:] else -1
        moment = due_at(parts[1], after)
        period = TimerEventDefinition.parse_iso_duration(parts[2])
    except Exception:  # noqa: BLE001 - SpiffWorkflow's duration parser raises a bare Exception
        return None
    if moment is None:
        return None
    for _ in range(100_000):
        if cycles == 0:
            return None
        if moment > after:
            return moment
        moment += TimerEventDefinition.get_timedelta_from_start(dict(period), moment)
        cycles -= 1
    return None


def due_at(expression: str | None, start: datetime) -> datetime | None:
    """Resolve a ``camunda:dueDate`` (ISO 8601 duration or date-time) against ``start``."""
    if not expression:
        return None
    text = expression.strip()
    try:
        if text.upper().startswith("P"):
            parsed = TimerEventDefinition.parse_iso_duration(text)
            return start + TimerEventDefinition.get_timedelta_from_start(parsed, start)
        moment = datetime.fromisoformat(text)
    except Exception:  # noqa: BLE001 - SpiffWorkflow raises a bare Exception on bad durations
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


#: How long a parsed definition's lookup trusts the roles it read; another process's change of roles or
#: group mappings reaches this one's new tasks and pages within this time.
ROLES_FRESH_SECONDS = 1.0


class DefinitionCache:
    """Parsed definitions by SHA-256 and the roles they were parsed against (bounded; specs are shared,
    read-only). Lanes and candidate groups resolve to roles and through group mappings, so a change of
    either parses again. A file is parsed once for all its processes."""

    def __init__(self, size: int = 64):
        self._items: OrderedDict[tuple[str, str, tuple[Any, ...]], dict[str, ParsedDefinition]] = OrderedDict()
        #: processes with the versions of other files' processes they call bound (:func:`bind`)
        self._bound: OrderedDict[tuple[Any, ...], ParsedDefinition] = OrderedDict()
        self._size = size
        self._lock = Lock()
        self._roles: WeakKeyDictionary[Any, tuple[float, Roles]] = WeakKeyDictionary()
        #: file digest → the decisions its business rule tasks call (part of the key: a new version of one parses again)
        self._decision_refs: dict[str, tuple[tuple[str, int | None], ...]] = {}

    def current_roles(self, bind: Any, load: Callable[[], Roles]) -> Roles:
        """The roles and group mappings of the database ``bind`` reaches, read at most every
        :data:`ROLES_FRESH_SECONDS` (every step and page would otherwise read them); a change made
        through a session of this engine is seen at once (:meth:`forget_roles`)."""
        with self._lock:
            memo = self._roles.get(bind)
        if memo is not None and monotonic() - memo[0] < ROLES_FRESH_SECONDS:
            return memo[1]
        roles = load()
        with self._lock:
            self._roles[bind] = (monotonic(), roles)
        return roles

    def bound(self, key: tuple[Any, ...], make: Callable[[], ParsedDefinition]) -> ParsedDefinition:
        """A process with the called versions ``key`` names bound, made by ``make`` on a miss."""
        with self._lock:
            cached = self._bound.get(key)
        if cached is None:
            cached = make()
            with self._lock:
                self._bound[key] = cached
                while len(self._bound) > self._size:
                    self._bound.popitem(last=False)
        return cached

    def forget_roles(self) -> None:
        with self._lock:
            self._roles.clear()

    def get(self, sha256: str, roles: dict[str, str], definition: Callable[[], ProcessDefinition],
            process_id: str, decided: decisions.Decisions | None = None) -> ParsedDefinition:
        """Process ``process_id`` of the file with this digest; the row (and its XML) is only loaded on a miss.
        The key holds the versions of the decisions the file calls: publishing one parses the file again."""
        refs = self._decision_refs.get(sha256)
        if refs is None:
            refs = decisions.decision_refs(parse_xml(definition().xml))
            with self._lock:
                if len(self._decision_refs) > 64 * self._size:
                    self._decision_refs.clear()
                self._decision_refs[sha256] = refs
        key = (sha256, _fingerprint(roles), decided.identity(refs) if decided is not None and refs else ())
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
        if cached is None:
            parsed, problems = parse_definitions(definition().xml, roles, decided=decided)
            cached = {p.process_id: p for p in parsed}
            with self._lock:
                self._items[key] = cached
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
        if process_id not in cached:
            raise InvalidDefinition([Problem(f"the file has no executable process “{process_id}” that can run")])
        return cached[process_id]


def _fingerprint(roles: dict[str, str]) -> str:
    groups = sorted(getattr(roles, "groups", {}).items())
    delegates = sorted(getattr(roles, "delegates", {}).items())
    return hashlib.sha256(repr((sorted(roles.items()), groups, delegates)).encode()).hexdigest()


#: roles (key, name, 0), group mappings (group id, role key, 1) and Java delegate mappings (delegate, topic, 2)
#: in one round trip
_ROLES = union_all(select(Role.key, Role.name, literal(0).label("mapped")),
                   select(GroupMapping.group_id, GroupMapping.role_key, literal(1)),
                   select(DelegateMapping.delegate, DelegateMapping.topic, literal(2)))


def known_roles(session: Session) -> Roles:
    """Every role (key → display name), with the group mappings lanes and candidate groups resolve through
    and the Java delegate mappings service tasks become external tasks through."""
    found: tuple[dict[str, str], dict[str, str], dict[str, str]] = ({}, {}, {})
    for key, value, mapped in run(session, _ROLES):
        found[mapped][key] = value
    return Roles(*found)


def parsed(session: Session, definition: ProcessDefinition, bound: dict[str, int] | None = None) -> ParsedDefinition:
    """The parsed process of ``definition``; with the versions of called processes a case bound (``bound``, see
    :func:`bind`), else with the versions a case starting now would bind."""
    return _cached(session, definition.sha256, lambda: definition, definition.bpmn_process_id, bound)


def parsed_by_id(session: Session, definition_id: int, bound: dict[str, int] | None = None) -> ParsedDefinition:
    definition = session.get(ProcessDefinition, definition_id)
    if definition is None:
        raise NotFound(f"There is no process version {definition_id}.")
    return parsed(session, definition, bound)


def parsed_by_sha(session: Session, definition_id: int, sha256: str, process_key: str,
                  bound: dict[str, int] | None = None) -> ParsedDefinition:
    """Like :func:`parsed` for callers that read only the definition's id, digest and process key (the hot
    path; a process's key is its BPMN id)."""
    return _cached(session, sha256, lambda: session.get(ProcessDefinition, definition_id), process_key, bound)


def parsed_for_case(session: Session, definition: ProcessDefinition, state: Callable[[], str]) -> ParsedDefinition:
    """The parsed process a case runs: with the versions of called processes its saved state recorded (read
    through ``state`` only when the process calls another file's)."""
    base = _unbound(session, definition.sha256, lambda: definition, definition.bpmn_process_id)
    return bind(session, base, core.bound_calls(state())) if base.calls else base


def _cached(session: Session, sha256: str, definition: Callable[[], ProcessDefinition],
            process_id: str, bound: dict[str, int] | None = None) -> ParsedDefinition:
    base = _unbound(session, sha256, definition, process_id)
    return bind(session, base, bound) if base.calls else base


def _unbound(session: Session, sha256: str, definition: Callable[[], ProcessDefinition],
             process_id: str) -> ParsedDefinition:
    """The process as its file defines it, without the processes of other files it calls."""
    cache = core.of(session).definitions
    return cache.get(sha256, cache.current_roles(session.get_bind(), lambda: known_roles(session)), definition,
                     process_id, decisions.source(session))


# --- call activities into other files ------------------------------------------------------------


def bind(session: Session, base: ParsedDefinition, bound: dict[str, int] | None = None) -> ParsedDefinition:
    """``base`` with the published processes its call activities name (and those call, transitively) added:
    the versions in ``bound`` (what a running case recorded at its start), else the versions the bindings
    choose now (the newest published, a version number, a version tag).

    The result is cached by the versions it binds: a case keeps running the versions it started with
    when a called process is published again.

    :raises InvalidDefinition: a called process (version) is not published
    """
    cache = core.of(session).definitions
    if bound:  # a running case: what it recorded (a version it lacks is chosen now and recorded at its save)
        return cache.bound((base.process_id, id(base.spec), tuple(sorted(bound.items()))),
                           lambda: _compose(session, base, _choose(session, base, bound)))
    choice = _choose(session, base, {})
    return cache.bound((base.process_id, id(base.spec), tuple(sorted(choice.items()))),
                       lambda: _compose(session, base, choice))


def _choose(session: Session, base: ParsedDefinition, bound: dict[str, int]) -> dict[str, int]:
    """The definition id of every process ``base`` calls, transitively: as ``bound`` says, else as chosen now."""
    chosen: dict[str, int] = {}
    todo = [base]
    while todo:
        current = todo.pop()
        for key, binding in current.calls.items():
            if key in chosen:
                continue
            row = session.get(ProcessDefinition, bound[key]) if key in bound else None
            if row is None:
                found = resolve_call(session, binding)
                if isinstance(found, str):
                    raise InvalidDefinition([Problem(f"call activity calls “{key}”{binding.describe()}: {found}",
                                                     binding.element_id)])
                row = session.get(ProcessDefinition, found[0])
            chosen[key] = row.id
            todo.append(_unbound(session, row.sha256, lambda row=row: row, row.bpmn_process_id))
    return chosen


def _compose(session: Session, base: ParsedDefinition, bound: dict[str, int]) -> ParsedDefinition:
    """``base`` with the called processes of ``bound`` merged in: their specs to run, and their user tasks,
    names and flows for the inbox and the history (a called process's user task names it and its version)."""
    specs, user_tasks = dict(base.subprocess_specs), {}
    names, flows, boundaries, topics = {}, {}, {}, {}
    used: dict[str, int] = {}
    todo = [base]
    while todo:
        parent = todo.pop()
        for key in parent.calls:
            if key in used or key not in bound:
                continue
            row = session.get(ProcessDefinition, bound[key])
            if row is None:
                raise NotFound(f"There is no process version {bound[key]} (called process “{key}”).")
            used[key] = row.id
            child = _unbound(session, row.sha256, lambda row=row: row, row.bpmn_process_id)
            specs.setdefault(key, child.spec)
            for name, spec in child.subprocess_specs.items():
                specs.setdefault(name, spec)
            label = f"{child.name} version {row.version}"
            for element_id, info in with_call_outputs(child, parent.call_outputs.get(key, {})).items():
                user_tasks.setdefault(element_id, info if info.called else replace(info, called=label))
            names.update(child.element_names)
            flows.update(child.flows)
            boundaries.update(child.boundaries)
            topics.update(child.external_topics)
            todo.append(child)
    return replace(base, subprocess_specs=specs, user_tasks={**user_tasks, **base.user_tasks},
                   element_names={**names, **base.element_names}, flows={**flows, **base.flows},
                   boundaries={**boundaries, **base.boundaries}, external_topics={**topics, **base.external_topics},
                   bound=used)


def resolve_call(session: Session, binding: CallBinding) -> tuple[int, int] | str:
    """The published version ``binding`` chooses: (definition id, version), or why there is none."""
    published = (select(ProcessDefinition.id, ProcessDefinition.version)
                 .where(ProcessDefinition.process_key == binding.process_id, ProcessDefinition.status == "published")
                 .order_by(ProcessDefinition.version.desc()))
    if binding.mode == "version":
        published = published.where(ProcessDefinition.version == int(binding.value))
    rows = list(session.execute(published))
    if binding.mode == "versionTag":
        tagged = [row for row in rows if version_tag(session.get(ProcessDefinition, row.id).xml,
                                                     binding.process_id) == binding.value]
        rows = tagged
    if not rows:
        return "it is not published: publish it first"
    return rows[0].id, rows[0].version


def version_tag(xml: str, process_id: str) -> str | None:
    """The ``camunda:versionTag`` of process ``process_id`` in ``xml``."""
    for process in parse_xml(xml).iterfind("bpmn:process", NS):
        if process.get("id") == process_id:
            return _camunda(process, "versionTag")
    return None


def published_resolver(session: Session) -> CallResolver:
    """Finds called processes among the published ones (publishing checks calls with it)."""
    return lambda binding: resolve_call(session, binding)


def deploy(
    session: Session,
    actor: User | None,
    xml: str | bytes,
    *,
    title: str | None = None,
    note: str = "",
) -> ProcessDefinition:
    """Publish ``xml`` (the first executable process of a file with several: see :func:`deploy_file`).

    :raises InvalidDefinition: listing every error of the file with its element id
    """
    return deploy_file(session, actor, xml, title=title, note=note)[0]


def deploy_file(
    session: Session,
    actor: User | None,
    xml: str | bytes,
    *,
    title: str | None = None,
    note: str = "",
) -> list[ProcessDefinition]:
    """Publish every executable process of ``xml`` as the next version of that process (its key is its
    BPMN id); a process whose content is unchanged keeps its version. All or nothing: one error in the
    file publishes none of them.

    :param title: the catalogue title of a new process (of the first one, in a file with several)
    :raises InvalidDefinition: listing every error of the file with its element id
    """
    text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    results, problems = parse_definitions(text, known_roles(session), published_resolver(session),
                                          decisions.source(session))
    errors = [p for p in problems if p.severity == "error"]
    if not results or errors:
        raise InvalidDefinition(errors or problems)
    digest = sha256(text)
    return [_deploy_process(session, actor, text, digest, result, title=title if i == 0 else None, note=note)
            for i, result in enumerate(results)]


def _deploy_process(session: Session, actor: User | None, text: str, digest: str, result: ParsedDefinition, *,
                    title: str | None, note: str) -> ProcessDefinition:
    latest = latest_definition(session, result.process_id, required=False)
    if latest is not None and latest.sha256 == digest:
        return latest
    process = session.get(Process, result.process_id)
    if process is None:
        # first publication: the start event's lane may start it; administrators own it until someone names
        # an owner role on the process page (owning grants cancelling every case, so it is never guessed)
        process = Process(key=result.process_id, title=title or result.name[:200], starter_roles=result.start_roles)
        session.add(process)
    elif title:
        process.title = title
    definition = ProcessDefinition(
        process_key=result.process_id,
        version=(latest.version + 1) if latest else 1,
        bpmn_process_id=result.process_id,
        name=result.name[:200],
        xml=text,
        sha256=digest,
        status="published",
        published_by_id=actor.id if actor else None,
        published_at=utcnow(),
        note=note,
    )
    session.add(definition)
    session.flush()
    audit.record(session, EventKind.DEFINITION_PUBLISHED, actor=actor, element_id=result.process_id,
                 process=result.process_id, version=definition.version, sha256=digest, note=note)
    _schedule(session, result)
    return definition


def _schedule(session: Session, result: ParsedDefinition) -> None:
    """A version with a timer start event is (re)scheduled; one without has its schedule removed."""
    schedule = session.get(ProcessSchedule, result.process_id)
    if result.start_timer is None:
        if schedule is not None:
            session.delete(schedule)
        return
    if schedule is None:
        schedule = ProcessSchedule(process_key=result.process_id)
        session.add(schedule)
    schedule.next_start_at = schedule_after(result.start_timer, utcnow())
    session.flush()


def latest_definition(session: Session, process_key: str, *, required: bool = True) -> ProcessDefinition | None:
    newest = (
        select(func.max(ProcessDefinition.version))
        .where(ProcessDefinition.process_key == process_key, ProcessDefinition.status == "published")
        .scalar_subquery()
    )
    definition = session.scalars(
        select(ProcessDefinition).where(
            ProcessDefinition.process_key == process_key, ProcessDefinition.version == newest
        )
    ).first()
    if definition is None and required:
        raise NotFound(f"No published process “{process_key}”.")
    return definition


def all_processes(session: Session) -> list[Process]:
    return list(session.scalars(select(Process).order_by(Process.title)))
