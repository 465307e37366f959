"""Workflow state ⇄ JSON, without the spec.

SpiffWorkflow's serializer writes the whole process spec into every saved workflow
and rebuilds it on every load. deptflow stores only the task tree and data; the spec
comes from the per-version cache in :mod:`engine.definitions`.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from .definitions import ParsedDefinition
from .expressions import script_engine

STATE_FORMAT = 1


class StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Like SpiffWorkflow's converter, minus ``spec`` and ``subprocess_specs``."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None, subprocess_specs: Any = None) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


_config = dict(CAMUNDA_CONFIG)
_config[BpmnWorkflow] = StateOnlyWorkflowConverter
REGISTRY = BpmnWorkflowSerializer.configure(_config)


def new_workflow(definition: ParsedDefinition) -> BpmnWorkflow:
    return BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=script_engine())


def dump(workflow: BpmnWorkflow) -> str:
    dct = REGISTRY.convert(workflow)
    dct["deptflow_state"] = STATE_FORMAT
    return json.dumps(dct, separators=(",", ":"))


def load(state: str, definition: ParsedDefinition) -> BpmnWorkflow:
    dct = json.loads(state)
    dct.pop("deptflow_state", None)
    workflow = REGISTRY.restore(dct, spec=definition.spec, subprocess_specs=definition.subprocess_specs)
    workflow.script_engine = script_engine()
    return workflow
