"""The script engine deptflow gives SpiffWorkflow: the sandbox, plus Camunda-style literals.

Camunda diagrams write timer values as bare ISO 8601 text (``PT1H``, ``2026-12-01T09:00``,
``R/2026-01-01T08:00/P1M``) and variables as ``${name}``; SpiffWorkflow evaluates every timer
and assignee expression as Python. This engine accepts both forms, so files from Camunda
Modeler run unchanged.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from . import clock, sandbox

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
        return _iso(super().evaluate(task, text, external_context))


def script_engine() -> DeptflowScriptEngine:
    clock.install_in_spiffworkflow()
    return DeptflowScriptEngine()
