"""Call activities with Camunda 7's variable mappings, and multi-instance over a collection.

SpiffWorkflow's call activity hands the whole task data to the called process and takes all of its
data back. A Camunda 7 call activity with ``camunda:in`` / ``camunda:out`` mappings passes only what
they name: the called process sees the mapped-in variables, the caller gets the mapped-out ones
(``variables="all"`` passes everything that way). A call activity without any mapping keeps
SpiffWorkflow's behaviour (all data in and out), which deptflow's own diagrams rely on.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.bpmn.serializer.default.task_spec import SubWorkflowConverter
from SpiffWorkflow.bpmn.specs.defaults import CallActivity
from SpiffWorkflow.camunda.parser.task_spec import CallActivityParser

from .expressions import literal_or_expression
from .forms import CAMUNDA_NS

#: a variable name, the only kind of ``camunda:collection`` / ``camunda:elementVariable`` deptflow maps
NAME = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Mapping:
    """One ``camunda:in`` or ``camunda:out``: ``target`` gets ``source`` (or ``expression``'s value);
    ``everything``: ``variables="all"``."""

    source: str | None = None
    expression: str | None = None
    target: str | None = None
    everything: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "expression": self.expression, "target": self.target,
                "everything": self.everything}


def mappings(node: etree._Element, direction: str) -> list[Mapping]:
    """The ``camunda:in`` (``direction="in"``) or ``camunda:out`` mappings of a call activity; a business key
    mapping is not a variable and is left out."""
    found = []
    for element in node.iterfind(f"./{{*}}extensionElements/{{{CAMUNDA_NS}}}{direction}"):
        if element.get("businessKey") is not None:
            continue
        found.append(Mapping(source=element.get("source"), expression=element.get("sourceExpression"),
                             target=element.get("target"), everything=element.get("variables") == "all"))
    return found


def mapping_problems(node: etree._Element) -> list[str]:
    """What is wrong with a call activity's mappings (each needs a source and a target, or variables="all")."""
    problems = []
    for direction in ("in", "out"):
        for mapping in mappings(node, direction):
            if mapping.everything:
                continue
            if not mapping.target or not (mapping.source or mapping.expression):
                problems.append(f"a camunda:{direction} mapping needs a source (or sourceExpression) and a target, "
                                "or variables=\"all\"")
            elif mapping.expression and direction == "out":
                problems.append("a camunda:out mapping with a sourceExpression is not supported: name the "
                                "called process's variable as its source")
    return problems


def _apply(mapping_list: list[Mapping], source: dict[str, Any], evaluate: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for mapping in mapping_list:
        if mapping.everything:
            values.update(deepcopy(source))
        elif mapping.target:
            value = evaluate(mapping.expression) if mapping.expression else source.get(mapping.source or "")
            values[mapping.target] = deepcopy(value)
    return values


class MappedCallActivity(CallActivity):
    """A call activity that passes variables as its ``camunda:in`` / ``camunda:out`` mappings say, when it has any."""

    def __init__(self, wf_spec: Any, bpmn_id: str, subworkflow_spec: str, in_mappings: list[Mapping] | None = None,
                 out_mappings: list[Mapping] | None = None, **kwargs: Any):
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.in_mappings = list(in_mappings or [])
        self.out_mappings = list(out_mappings or [])

    @property
    def mapped(self) -> bool:
        return bool(self.in_mappings or self.out_mappings)

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        if not self.mapped:
            return super().copy_data(my_task, subworkflow)
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")

        def evaluate(expression: str) -> Any:
            return my_task.workflow.script_engine.evaluate(my_task, expression)

        start.set_data(**_apply(self.in_mappings, my_task.data, evaluate))
        return None

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        if not self.mapped:
            return super().update_data(my_task, subworkflow)
        child = subworkflow.last_task.data if subworkflow.last_task is not None else {}
        my_task.data.update(_apply(self.out_mappings, child, lambda _expression: None))
        return None


class MappedCallActivityParser(CallActivityParser):
    def create_task(self) -> MappedCallActivity:
        called = SubprocessParser.get_call_activity_spec(self)
        return MappedCallActivity(self.spec, self.bpmn_id, called, in_mappings=mappings(self.node, "in"),
                                  out_mappings=mappings(self.node, "out"), **self.bpmn_attributes)


class MappedCallActivityConverter(SubWorkflowConverter):
    """Serializes :class:`MappedCallActivity` (instance migration compares specs through the registry)."""

    def to_dict(self, spec: MappedCallActivity) -> dict[str, Any]:
        dct = super().to_dict(spec)
        dct["in_mappings"] = [m.as_dict() for m in spec.in_mappings]
        dct["out_mappings"] = [m.as_dict() for m in spec.out_mappings]
        return dct

    def from_dict(self, dct: dict[str, Any]) -> MappedCallActivity:
        dct["in_mappings"] = [Mapping(**m) for m in dct.get("in_mappings", [])]
        dct["out_mappings"] = [Mapping(**m) for m in dct.get("out_mappings", [])]
        return super().from_dict(dct)


def collection_name(text: str) -> str | None:
    """The variable a ``camunda:collection`` names (``${reviewers}`` or ``reviewers``); None when it is
    another kind of expression."""
    is_literal, expression = literal_or_expression(text)
    return expression if not is_literal and NAME.match(expression) else None
