"""Restricted evaluation of BPMN conditions and script tasks.

SpiffWorkflow's default environment calls plain ``eval``/``exec``; a diagram edited in
the browser must never reach the host, so expressions and scripts are compiled with
RestrictedPython (no imports, no names or attributes starting with ``_``) and run with
a small whitelist of builtins.
"""

from __future__ import annotations

import ast
import builtins
import datetime
import math
import operator
from functools import lru_cache
from types import CodeType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, limited_builtins, safe_builtins
from RestrictedPython.Eval import default_guarded_getiter
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr,
)
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from .errors import ScriptError

_EXTRA_BUILTINS = {
    name: getattr(builtins, name)
    for name in ("min", "max", "sum", "any", "all", "sorted", "enumerate", "list", "dict", "set")
}

BUILTINS: dict[str, Any] = {**safe_builtins, **limited_builtins, **_EXTRA_BUILTINS}

#: Helpers a condition or script may call besides the builtins.
HELPERS: dict[str, Any] = {
    "date": datetime.date,
    "timedelta": datetime.timedelta,
    "floor": math.floor,
    "ceil": math.ceil,
}


def _guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and key.startswith("_"):
        raise KeyError(key)
    return operator.getitem(obj, key)


def _globals() -> dict[str, Any]:
    return {
        "__builtins__": BUILTINS,
        "_getattr_": safer_getattr,
        "_getitem_": _guarded_getitem,
        "_getiter_": default_guarded_getiter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        **HELPERS,
    }


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> CodeType:
    """Compile a condition; raises :class:`ScriptError` naming what was refused."""
    result = compile_restricted_eval(expression.strip(), "<condition>")
    if result.errors or result.code is None:
        raise ScriptError("; ".join(result.errors) or "invalid expression")
    return result.code


@lru_cache(maxsize=1024)
def compile_script(script: str) -> CodeType:
    if any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(ast.parse(script))):
        raise ScriptError("imports are not allowed in scripts")
    result = compile_restricted_exec(script, "<script>")
    if result.errors or result.code is None:
        raise ScriptError("; ".join(result.errors) or "invalid script")
    return result.code


def evaluate(expression: str, data: dict[str, Any]) -> Any:
    """Evaluate ``expression`` against process ``data`` in the sandbox."""
    code = compile_expression(expression)
    scope = _globals()
    scope.update({k: v for k, v in data.items() if not k.startswith("_")})
    return eval(code, scope)  # noqa: S307 - restricted code object


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment backed by RestrictedPython."""

    def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
        return evaluate(expression, {**(external_context or {}), **context})

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        code = compile_script(script)
        scope = _globals()
        reserved = set(scope)
        scope.update(external_context or {})
        scope.update({k: v for k, v in context.items() if not k.startswith("_")})
        exec(code, scope)  # noqa: S102 - restricted code object
        for key, value in scope.items():
            if key in reserved or key.startswith("_") or callable(value):
                continue
            context[key] = value
        return True


def script_engine() -> PythonScriptEngine:
    return PythonScriptEngine(environment=SandboxEnvironment())
