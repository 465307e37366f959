"""Compiling and running one condition or script: the compile cache, the scope of a run, the run
itself under a fresh budget, and the :class:`SandboxError` (logged on ``deptflow.sandbox``) that
every refusal or exhausted budget becomes.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, TracebackType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec

from .budget import MAX_SOURCE, _local, _Run
from .errors import SandboxError, _describe_type, _Stop
from .guards import _HOOKS
from .policy import _ATTRIBUTES, _CLASS_ATTRIBUTES, BUILTINS, HELPERS, REFUSED_MODULES, REFUSED_NAMES, _Policy

log = logging.getLogger("deptflow.sandbox")

_FILENAMES = {"condition": "<condition>", "script": "<script>"}


# --- failures: logged, naming the BPMN element ----------------------------------------


def _snippet(source: str) -> str:
    text = " ".join(source.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _element_label(task: Any) -> str:
    """``[id] “name”`` of the BPMN element a SpiffWorkflow task runs."""
    spec = task.task_spec
    element = getattr(spec, "bpmn_id", None) or spec.name
    name = getattr(spec, "bpmn_name", None)
    return f"[{element}] “{name}”" if name and name != element else f"[{element}]"


def _current_element() -> str:
    """The element whose code runs now: set by :class:`SandboxScriptEngine`, or else found as the
    ``task`` of the SpiffWorkflow engine method that called the environment (any engine class)."""
    element = getattr(_local, "element", None)
    if element:
        return element
    caller = getattr(_local, "caller", None)
    task = caller.f_locals.get("task") if caller is not None else None
    return _element_label(task) if hasattr(task, "task_spec") else ""


def _failure(kind: str, source: str, message: str, *, refused: bool, line: int | None = None,
             verb: str | None = None) -> SandboxError:
    """The error for a refused or stopped run, logged as a warning on ``deptflow.sandbox``."""
    element = _current_element()
    where = f" (line {line})" if line and kind == "script" else ""
    log.warning("%s %s%s%s: %s; source: %s", verb or ("refused" if refused else "stopped"), kind,
                f" {element}" if element else "", where, message, _snippet(source))
    return SandboxError(message + where, refused=refused, line=line, element=element)


def _refused_at_compile(kind: str, source: str, reason: str) -> SandboxError:
    return _failure(kind, source, f"{kind} refused: {reason}", refused=True)


# --- compilation ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Compiled:
    code: CodeType


@lru_cache(maxsize=4096)
def _compile(source: str, kind: str) -> _Compiled:
    mode = "eval" if kind == "condition" else "exec"
    text = source.strip() if mode == "eval" else source
    if len(text) > MAX_SOURCE[kind]:
        raise _refused_at_compile(kind, text, f"longer than {MAX_SOURCE[kind]:,} characters")
    try:
        tree = ast.parse(text, _FILENAMES[kind], mode)
    except SyntaxError as exc:
        raise SandboxError(f"invalid {kind}: line {exc.lineno}: {exc.msg}", line=exc.lineno,
                           element=_current_element()) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _refused_at_compile(kind, text, f"cannot be parsed ({type(exc).__name__})") from None
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, _FILENAMES[kind], policy=_Policy)
    except (RecursionError, MemoryError) as exc:
        raise _refused_at_compile(kind, text, f"too deeply nested ({type(exc).__name__})") from None
    if result.errors or result.code is None:
        raise _refused_at_compile(kind, text, "; ".join(result.errors) or "cannot be compiled")
    return _Compiled(result.code)


def compile_expression(expression: str) -> CodeType:
    """Compile a condition; raises :class:`ScriptError` naming what was refused."""
    return _compile(expression, "condition").code


def compile_script(script: str) -> CodeType:
    """Compile a script task's script; raises :class:`ScriptError` naming what was refused."""
    return _compile(script, "script").code


# --- what compiles but is refused when it runs ---------------------------------------

_OFFERED_ATTRIBUTES = frozenset().union(*_ATTRIBUTES.values(), *_CLASS_ATTRIBUTES.values(), {"args"})


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the code itself binds: assignments, loop and comprehension targets, functions, arguments."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def run_time_refusals(source: str, kind: str) -> list[str]:
    """What in a condition or script compiles but would be refused whenever it runs: calls of names
    the sandbox does not have (``getattr(…)``, ``os.system(…)``, ``format(…)``) and attributes no value
    in the sandbox offers (``x.format``). For deploy-time warnings; :func:`_compile` gives the errors.

    Names that are neither bound by the code nor builtins or helpers may be process data; only those
    that are called (data is never a function) or that name a module are reported.
    """
    try:
        tree = ast.parse(source.strip() if kind == "condition" else source, _FILENAMES[kind],
                         "eval" if kind == "condition" else "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    known = set(BUILTINS) | set(HELPERS) | _bound_names(tree)
    found: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in known:
            name = node.func.id
            why = "is refused by the sandbox" if name in REFUSED_NAMES else "is not available in the sandbox"
            found[f"calls {name}(), which {why}"] = None
        elif isinstance(node, ast.Name) and node.id in REFUSED_MODULES and node.id not in known:
            found[f"uses the module “{node.id}”, which is not available in the sandbox"] = None
        elif (isinstance(node, ast.Attribute) and not node.attr.startswith("_")
              and node.attr not in _OFFERED_ATTRIBUTES):
            found[f"uses “.{node.attr}”, which no value offers in the sandbox"] = None
    return list(found)


# --- running --------------------------------------------------------------------------


def _scope(data: dict[str, Any], external: dict[str, Any] | None = None) -> dict[str, Any]:
    """Globals of one run: helpers, then process data (which wins over helpers), then the hooks
    (which nothing overrides). Data names starting with ``_`` cannot be named by the code."""
    scope = dict(HELPERS)
    if external:
        scope.update(external)
    scope.update(data)
    scope.update(_HOOKS)
    return scope


def _line_in(traceback: TracebackType | None, filename: str) -> int | None:
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _run(compiled: _Compiled, scope: dict[str, Any], kind: str, source: str) -> Any:
    """Run compiled code under a fresh budget; every way it can be stopped becomes a SandboxError."""
    run = _Run(kind)
    filename = _FILENAMES[kind]
    failure: tuple[str, bool, int | None] | None = None
    previous = getattr(_local, "run", None)
    _local.run = run
    try:
        try:
            if kind == "condition":
                result = eval(compiled.code, scope)  # noqa: S307 - restricted, instrumented code object
            else:
                exec(compiled.code, scope)  # noqa: S102 - restricted, instrumented code object
                result = None
        finally:
            _local.run = previous
    except _Stop as stop:
        failure = (stop.message, stop.refused, _line_in(stop.__traceback__, filename))
    except MemoryError:
        failure = (f"{kind} exceeded its memory budget", False, None)
    except RecursionError:
        failure = (f"{kind} exceeded its recursion limit", False, None)
    except NameError as exc:
        if exc.name in REFUSED_NAMES:
            message = f"{exc.name}() is not available in the sandbox"
        elif exc.name in REFUSED_MODULES:
            message = f"the module “{exc.name}” is not available in the sandbox"
        else:
            raise  # an unknown variable: SpiffWorkflow suggests the closest name
        failure = (message, True, _line_in(exc.__traceback__, filename))
    if failure is None and run.failure is not None:  # stopped, but the code swallowed it in a finally
        failure = (run.failure.message, run.failure.refused, None)
    if failure is not None:
        message, refused, line = failure
        raise _failure(kind, source, message, refused=refused, line=line)
    return result


def _check_result(result: Any, expression: str) -> Any:
    if callable(result) or isinstance(result, Iterator):
        raise _failure("condition", expression, f"a condition must produce a value, not {_describe_type(result)}",
                       refused=True)
    return result


def evaluate(expression: str, data: dict[str, Any]) -> Any:
    """Evaluate ``expression`` against process ``data`` in the sandbox."""
    compiled = _compile(expression, "condition")
    return _check_result(_run(compiled, _scope(data), "condition", expression), expression)
