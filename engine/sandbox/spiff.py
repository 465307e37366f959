"""The SpiffWorkflow integration: :class:`SandboxEnvironment` (the script environment that runs
conditions and scripts in the sandbox and writes back what a script set) and
:class:`SandboxScriptEngine` (the script engine whose errors name the BPMN element).
"""

from __future__ import annotations

import datetime
import math
import sys
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException

from .budget import MAX_LENGTH, MAX_NESTING, _expanded, _local
from .errors import SandboxError, _describe_type
from .runner import _FILENAMES, _check_result, _compile, _element_label, _failure, _line_in, _run, _scope, _snippet

# --- values a script sets, as saved with the case -------------------------------------

_MISSING = object()


def _check_saved_size(value: Any, name: str) -> None:
    """Refuse a value whose JSON would be too large or too deep, measured expanded before any walk
    (a list aliased inside itself 22 times is 4 million items once serialised)."""
    size, depth = _expanded(value)
    if depth > MAX_NESTING:
        raise SandboxError(f"the script set “{name}” to a value nested too deeply to be saved "
                           f"(more than {MAX_NESTING} levels)", refused=True)
    if size > MAX_LENGTH:
        raise SandboxError(f"the script set “{name}” to a value of more than {MAX_LENGTH:,} characters or "
                           "elements (expanded); it cannot be saved", refused=True)


def _storable(value: Any, name: str, depth: int = 0) -> Any:
    """``value`` as it can be saved with the case (JSON: dates become ISO text), or a SandboxError."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if not math.isfinite(value):
            raise SandboxError(f"the script set “{name}” to {value}, which cannot be saved", refused=True)
        return value
    if kind in (datetime.date, datetime.datetime):
        return value.isoformat()
    if depth >= MAX_NESTING:
        root = name.split("[", 1)[0]
        raise SandboxError(f"the script set “{root}” to a value nested too deeply to be saved", refused=True)
    if kind in (list, tuple):
        items = [_storable(item, f"{name}[{i}]", depth + 1) for i, item in enumerate(value)]
        unchanged = kind is list and all(a is b for a, b in zip(items, value, strict=True))
        return value if unchanged else items
    if kind is dict:
        if not all(type(key) is str for key in value):
            raise SandboxError(f"the script set “{name}” to a dict whose keys are not all text", refused=True)
        items = {key: _storable(item, f"{name}[{key!r}]", depth + 1) for key, item in value.items()}
        return value if all(items[k] is value[k] for k in value) else items
    raise SandboxError(f"the script set “{name}” to {_describe_type(value)}, which cannot be saved with the case; "
                       "use numbers, text, lists or dicts", refused=True)


# --- the environment and the engine ---------------------------------------------------


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment backed by RestrictedPython and the budgets of :mod:`.budget`.

    It works under any :class:`PythonScriptEngine`; under :class:`SandboxScriptEngine` ordinary
    errors (``ZeroDivisionError``…) name the element too, not only refusals and budgets.
    """

    def evaluate(self, expression: str, context: dict[str, Any], external_context: Any = None) -> Any:
        previous, _local.caller = getattr(_local, "caller", None), sys._getframe(1)
        try:
            compiled = _compile(expression, "condition")
            result = _run(compiled, _scope(context, external_context), "condition", expression)
            return _check_result(result, expression)
        finally:
            _local.caller = previous

    def execute(self, script: str, context: dict[str, Any], external_context: Any = None) -> bool:
        """Run ``script`` on the task data; write back the plain values it set and drop those it deleted.

        Functions it defines are dropped; a value that cannot be saved with the case (an
        iterator, a ``timedelta``, ``nan``) is an error naming the variable; dates become
        ISO text. When the script fails nothing is written back (lists or dicts it changed
        in place are discarded with the failed transaction).
        """
        previous, _local.caller = getattr(_local, "caller", None), sys._getframe(1)
        try:
            return self._execute(script, context, external_context or {})
        finally:
            _local.caller = previous

    def _execute(self, script: str, context: dict[str, Any], external: dict[str, Any]) -> bool:
        compiled = _compile(script, "script")
        scope = _scope(context, external)
        _run(compiled, scope, "script", script)
        updates: dict[str, Any] = {}
        for key, value in scope.items():
            if key.startswith("_") or callable(value):  # hooks, private data, functions and helpers
                continue
            if key in external and key not in context and value is external[key]:
                continue  # data objects stay where SpiffWorkflow keeps them
            if context.get(key, _MISSING) is value and type(value) not in (list, dict):
                continue  # untouched
            try:
                _check_saved_size(value, key)
                updates[key] = _storable(value, key)
            except SandboxError as exc:
                raise _failure("script", script, exc.reason, refused=True) from None
        removed = [key for key in context if not key.startswith("_") and key not in scope]
        context.update(updates)
        for key in removed:
            del context[key]
        return True


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


class SandboxScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine with messages that start with the BPMN element
    (``[compute_score] “Compute priority”: script failed (line 3): ZeroDivisionError: …``)."""

    def _describe(self, task: Any, what: str, exc: BaseException) -> str:
        if isinstance(exc, SandboxError):
            return f"{exc.element or _element_label(task)}: {what} failed: {exc.reason}"
        line = ""
        if what == "script":
            number = _line_in(exc.__traceback__, _FILENAMES["script"])
            line = f" (line {number})" if number else ""
        return f"{_element_label(task)}: {what} failed{line}: {_reason(exc)}"

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        previous, _local.element = getattr(_local, "element", None), _element_label(task)
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SandboxError as exc:
            message = self._describe(task, f"condition “{_snippet(expression)}”", exc)
            raise WorkflowTaskException(message, task=task, exception=exc) from exc
        except SpiffWorkflowException as exc:
            exc.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as exc:
            message = self._describe(task, f"condition “{_snippet(expression)}”", exc)
            raise WorkflowTaskException(message, task=task, exception=exc) from exc
        finally:
            _local.element = previous

    def execute(self, task: Any, script: str, external_context: Any = None) -> bool:
        previous, _local.element = getattr(_local, "element", None), _element_label(task)
        try:
            return self.environment.execute(script, task.data, external_context or {})
        except SandboxError as exc:
            raise WorkflowTaskException(self._describe(task, "script", exc), task=task, exception=exc) from exc
        except SpiffWorkflowException as exc:
            exc.add_note(f"Error in the script of {_element_label(task)}")
            raise
        except Exception as exc:
            raise WorkflowTaskException(self._describe(task, "script", exc), task=task, exception=exc) from exc
        finally:
            _local.element = previous

