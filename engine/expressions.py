"""The script engine deptflow gives SpiffWorkflow: the sandbox, plus Camunda-style literals.

Camunda diagrams write timer values as bare ISO 8601 text (``PT1H``, ``2026-12-01T09:00``,
``R/2026-01-01T08:00/P1M``) and conditions and variables as JUEL (``${approved}``, ``${amount > 1000}``);
SpiffWorkflow evaluates every condition and timer expression through the script engine. This engine
hands ``${…}``/``#{…}`` to :mod:`engine.juel` (an expression tree over the case data, no Python) and
everything else to the Python sandbox, so files from Camunda Modeler run unchanged and deptflow's own
Python conditions keep working.
"""

from __future__ import annotations

import re
import sys
from datetime import date, datetime
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.bpmn_task_spec import _BpmnCondition

from . import clock, juel, sandbox
from .sandbox.runner import _element_label

#: SpiffWorkflow's sequence flow condition: what it evaluates must be a boolean in JUEL (as in Camunda)
_CONDITION_CODE = _BpmnCondition._matches.__code__

ISO_LITERAL = re.compile(
    r"^(R\d*/.+|P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?)$"
)
JUEL_VARIABLE = re.compile(r"^\$\{\s*(.+?)\s*\}$")


def literal_or_expression(expression: str) -> tuple[bool, str]:
    """``(True, text)`` for an ISO 8601 literal, else ``(False, python_expression)``."""
    text = expression.strip()
    if ISO_LITERAL.match(text):
        return True, text
    match = JUEL_VARIABLE.match(text)
    return False, match.group(1) if match else text


def _iso(value: Any) -> Any:
    """Dates from forms are ISO strings already; real date objects become ISO text for the timer parser."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


class DeptflowScriptEngine(sandbox.SandboxScriptEngine):
    def __init__(self) -> None:
        super().__init__(environment=sandbox.SandboxEnvironment())

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        is_literal, text = literal_or_expression(expression)
        if is_literal:
            return text
        if juel.is_expression(expression):
            return self._juel(task, expression.strip(), sys._getframe(1).f_code is _CONDITION_CODE)
        return _iso(super().evaluate(task, text, external_context))

    def _juel(self, task: Any, expression: str, condition: bool) -> Any:
        try:
            value = juel.evaluate(expression, task.data)
            if condition and not isinstance(value, bool):
                # Camunda 7 refuses the same: "condition expression returns non-Boolean"
                raise juel.JuelError(f"condition “{expression}” returns {juel.describe(value)}, not true or false")
        except juel.JuelError as exc:
            raise WorkflowTaskException(f"{_element_label(task)}: {exc}", task=task, exception=exc) from exc
        return _iso(value)


def script_engine() -> DeptflowScriptEngine:
    clock.install_in_spiffworkflow()
    return DeptflowScriptEngine()
