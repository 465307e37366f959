"""The shipped BPMN files: valid, Camunda-Modeler-ready, and lossless through persistence."""

from __future__ import annotations

import pytest
from lxml import etree
from SpiffWorkflow.util.task import TaskState

from engine.definitions import NS, parse_definition
from engine.inbox import ROLE_MEMBERS
from workflows.catalogue import PROCESSES, ROLES

ROLE_NAMES = {r.key: r.name for r in ROLES}
DI = {"bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI"}


@pytest.fixture(params=PROCESSES, ids=lambda p: p.key)
def spec(request):
    return request.param


def test_parses_without_problems(spec):
    parsed, problems = parse_definition(spec.path.read_text(), ROLE_NAMES)
    assert problems == []
    assert parsed.process_id == spec.key
    assert parsed.start_roles == list(spec.starter_roles)
    if parsed.start_timer is None:  # started by people: the start form names the case
        assert parsed.start_form.fields[0].id == "title" and parsed.start_form.fields[0].required
    else:  # started by the scheduler: nobody may start it by hand
        assert spec.starter_roles == () and parsed.start_form.fields == []


def test_modeler_ready(spec):
    root = etree.parse(str(spec.path)).getroot()
    process = root.find("bpmn:process", NS)
    lanes = {lane.get("name"): [r.text for r in lane.iterfind("bpmn:flowNodeRef", NS)]
             for lane in process.iterfind(".//bpmn:lane", NS)}
    assert set(lanes) <= set(ROLE_NAMES.values()), "one lane per role, named like the role"
    shapes = {s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", DI)}
    edges = {e.get("bpmnElement") for e in root.iterfind(".//bpmndi:BPMNEdge", DI)}
    skip = ("laneSet", "sequenceFlow", "documentation", "extensionElements", "multiInstanceLoopCharacteristics",
            "incoming", "outgoing")
    containers = [process, *process.iter("{*}subProcess")]  # an expanded sub-process's elements sit in lanes too
    nodes = [n for c in containers for n in c
             if isinstance(n.tag, str) and n.tag.startswith("{http://www.omg.org/spec/BPMN/20100524/MODEL}")
             and etree.QName(n).localname not in skip]
    assert {n.get("id") for n in nodes} <= shapes
    assert {f.get("id") for f in process.iterfind(".//bpmn:sequenceFlow", NS)} <= edges
    in_lanes = [ref for refs in lanes.values() for ref in refs]
    assert sorted(in_lanes) == sorted(n.get("id") for n in nodes), "every flow node in exactly one lane"
    gateways = process.findall(".//bpmn:exclusiveGateway", NS)
    assert gateways, "at least one decision"
    name_of_lane = {ref: name for name, refs in lanes.items() for ref in refs}
    for task in process.iterfind(".//bpmn:userTask", NS):
        group = task.get("{http://camunda.org/schema/1.0/bpmn}candidateGroups")
        assert ROLE_NAMES[group] == name_of_lane[task.get("id")], task.get("id")


def test_rework_loop_exists(spec):
    """Some flow leaves a gateway back to an element that comes before it."""
    process = etree.parse(str(spec.path)).getroot().find("bpmn:process", NS)
    flows = [(f.get("sourceRef"), f.get("targetRef")) for f in process.iterfind(".//bpmn:sequenceFlow", NS)]
    graph: dict[str, list[str]] = {}
    for source, target in flows:
        graph.setdefault(source, []).append(target)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, []))
        return False

    gateway_ids = {g.get("id") for g in process.iterfind(".//bpmn:exclusiveGateway", NS)}
    assert any(source in gateway_ids and reaches(target, source) for source, target in flows)


def test_state_round_trip_is_lossless(spec, workflow_engine):
    parsed, _ = parse_definition(spec.path.read_text(), ROLE_NAMES)
    workflow = workflow_engine.new_workflow(parsed)
    for task in workflow.get_tasks():  # what deptflow gives a case at its start, and a text to keep
        task.data.update({**start_data(parsed, spec.path.read_text()), "note": "ünïcode ✓"})
    workflow.do_engine_steps()
    state = workflow_engine.dump(workflow)
    restored = workflow_engine.load(state, parsed)
    assert workflow_engine.dump(restored) == state
    ready = [t.task_spec.bpmn_id for t in restored.get_tasks() if t.state == TaskState.READY]
    assert ready == [t.task_spec.bpmn_id for t in workflow.get_tasks() if t.state == TaskState.READY]
    assert restored.last_task.data["note"] == "ünïcode ✓"


def start_data(parsed, xml: str) -> dict:
    """What deptflow puts in a new case's data: a value for each start form field (its default, else the first
    option, else one of its type), the members of the roles for a case a timer starts that reads them."""
    samples = {"long": 1, "double": 1.0, "boolean": False, "date": "2027-01-12", "file": None}
    data: dict = {}
    for f in parsed.start_form.fields:
        data[f.id] = f.default or (f.options[0][0] if f.options else samples.get(f.type, "Round trip"))
    if parsed.start_timer is not None and ROLE_MEMBERS in xml:
        data[ROLE_MEMBERS] = {"sales_rep": ["sara", "steve"]}
    return data


def test_settings_name_user_tasks_of_the_diagram(spec):
    """Separation of duties names tasks that exist: a renamed task would silently drop the rule."""
    parsed, _ = parse_definition(spec.path.read_text(), ROLE_NAMES)
    named = set(spec.separated_tasks) | {task for pair in spec.separated_pairs for task in pair}
    assert named <= set(parsed.user_tasks)
    assert all(a != b for a, b in spec.separated_pairs)
