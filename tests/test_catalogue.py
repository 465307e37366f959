"""The shipped BPMN files: valid, Camunda-Modeler-ready, and lossless through persistence."""

from __future__ import annotations

import pytest
from lxml import etree
from SpiffWorkflow.util.task import TaskState

from engine.definitions import NS, parse_definition
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
    nodes = [n for n in process if etree.QName(n).localname not in ("laneSet", "sequenceFlow", "documentation",
                                                                     "extensionElements")]
    assert {n.get("id") for n in nodes} <= shapes
    assert {f.get("id") for f in process.iterfind("bpmn:sequenceFlow", NS)} <= edges
    in_lanes = [ref for refs in lanes.values() for ref in refs]
    assert sorted(in_lanes) == sorted(n.get("id") for n in nodes), "every flow node in exactly one lane"
    gateways = process.findall("bpmn:exclusiveGateway", NS)
    assert gateways, "at least one decision"
    name_of_lane = {ref: name for name, refs in lanes.items() for ref in refs}
    for task in process.iterfind("bpmn:userTask", NS):
        group = task.get("{http://camunda.org/schema/1.0/bpmn}candidateGroups")
        assert ROLE_NAMES[group] == name_of_lane[task.get("id")], task.get("id")


def test_rework_loop_exists(spec):
    """Some flow leaves a gateway back to an element that comes before it."""
    process = etree.parse(str(spec.path)).getroot().find("bpmn:process", NS)
    flows = [(f.get("sourceRef"), f.get("targetRef")) for f in process.iterfind("bpmn:sequenceFlow", NS)]
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

    gateway_ids = {g.get("id") for g in process.iterfind("bpmn:exclusiveGateway", NS)}
    assert any(source in gateway_ids and reaches(target, source) for source, target in flows)


def test_state_round_trip_is_lossless(spec, workflow_engine):
    parsed, _ = parse_definition(spec.path.read_text(), ROLE_NAMES)
    workflow = workflow_engine.new_workflow(parsed)
    for task in workflow.get_tasks():
        task.data.update({"title": "Round trip", "note": "ünïcode ✓"})
    workflow.do_engine_steps()
    state = workflow_engine.dump(workflow)
    restored = workflow_engine.load(state, parsed)
    assert workflow_engine.dump(restored) == state
    ready = [t.task_spec.bpmn_id for t in restored.get_tasks() if t.state == TaskState.READY]
    assert ready == [t.task_spec.bpmn_id for t in workflow.get_tasks() if t.state == TaskState.READY]
    assert restored.last_task.data["note"] == "ünïcode ✓"


def test_settings_name_user_tasks_of_the_diagram(spec):
    """Separation of duties names tasks that exist: a renamed task would silently drop the rule."""
    parsed, _ = parse_definition(spec.path.read_text(), ROLE_NAMES)
    named = set(spec.separated_tasks) | {task for pair in spec.separated_pairs for task in pair}
    assert named <= set(parsed.user_tasks)
    assert all(a != b for a, b in spec.separated_pairs)
