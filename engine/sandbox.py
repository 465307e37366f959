"""Restricted evaluation of BPMN conditions and script tasks.

SpiffWorkflow's default environment calls plain ``eval``/``exec``; a diagram edited in
the browser must never reach the host. Conditions and scripts therefore go through
four layers:

1. **Compilation** with RestrictedPython and an extra policy (:class:`_Policy`): no
   imports, no class definitions, no names or attributes starting with ``_``, no
   computed f-string format specifications. The policy also instruments the code:
   arithmetic that can blow up (``*``, ``**``, ``<<``, ``+``, ``%``) calls a guard,
   every ``while`` body and every iteration counts a step, and every function or
   lambda is wrapped so that calls count steps and recursion depth.
2. **A small whitelist** of builtins (:data:`BUILTINS`) and helpers (:data:`HELPERS`);
   ``getattr``, ``type``, ``vars``, ``open``, ``__import__``… do not exist in the sandbox.
   Attribute access is allowed only on plain values (text, numbers, lists, dicts, sets,
   dates) and only for a listed set of methods: ``str.format`` and friends, generator
   frames, function internals and everything else are refused.
3. **Budgets** per run (:data:`LIMITS`): a number of steps and a wall-clock deadline,
   a recursion depth, a size cap on each value an operator or method builds, and a
   memory ceiling (an address-space limit of the process at a fixed headroom above its
   current size, set for the duration of a script and restored right after;
   ``DEPTFLOW_SANDBOX_MEMORY_MB``, 0 disables it). A light condition (no loops or
   functions, a handful of operations) runs without the ceiling and without step
   accounting unless it starts building large values.
4. **Clear errors**: a refusal or an exhausted budget stops the run with a
   :class:`SandboxError` (a :class:`~engine.errors.ScriptError`) and a warning on the
   ``deptflow.sandbox`` logger. Inside the sandbox the stop is not an ``Exception``, so
   ``try``/``except`` in a script cannot swallow it; :class:`SandboxScriptEngine` names
   the BPMN element in the message SpiffWorkflow passes on.

Known limit: a single C-level builtin call on values the budgets allow (for example
comparing deeply aliased nested lists built in a loop) cannot be interrupted in-process;
the per-value caps keep such calls short in practice.
"""

from __future__ import annotations

import ast
import datetime
import logging
import math
import operator
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, TracebackType
from typing import Any

from RestrictedPython import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException

from .errors import ScriptError

log = logging.getLogger("deptflow.sandbox")

try:  # the memory ceiling needs POSIX resource limits and /proc (Linux)
    import resource
except ImportError:  # pragma: no cover - not on Linux
    resource = None  # type: ignore[assignment]


# --- limits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The budget of one run of a condition or a script."""

    steps: int
    seconds: float


#: Budgets by kind of code. A step is a loop iteration or a call of a function the code defined.
LIMITS: dict[str, Limits] = {
    "condition": Limits(steps=100_000, seconds=1.0),
    "script": Limits(steps=1_000_000, seconds=2.0),
}
#: Longest source accepted, in characters.
MAX_SOURCE: dict[str, int] = {"condition": 10_000, "script": 100_000}
#: Deepest nesting of calls of functions defined by the code.
MAX_DEPTH = 50
#: Largest value (characters or elements, nested containers counted) one operator or method may build.
MAX_LENGTH = 1_000_000
#: Largest integer one operator may build, in bits (about 3,000 decimal digits).
MAX_INT_BITS = 10_000
#: Elements built by guarded operations after which a light condition also gets the memory ceiling.
CEILING_AFTER = 100_000
#: Calls, operators, subscripts and literals a condition may have and still run without the memory ceiling.
LIGHT_NODES = 12
#: Total elements built by guarded operations when no memory ceiling is available.
MAX_BUILT_WITHOUT_CEILING = 20_000_000
#: Address space a run may add to the process, in MiB (0: no ceiling).
MEMORY_HEADROOM_MB = int(os.environ.get("DEPTFLOW_SANDBOX_MEMORY_MB", "512"))

_FILENAMES = {"condition": "<condition>", "script": "<script>"}


# --- errors ---------------------------------------------------------------------------


class SandboxError(ScriptError, WorkflowException):
    """A condition or script was refused, or ran out of its budget.

    Also a SpiffWorkflow exception, so that any SpiffWorkflow script engine passes the
    message on (it replaces other errors of conditions by a generic one).

    :ivar reason: what happened, without the element
    :ivar element: the BPMN element that ran the code (``[id] “name”``), when known; the
        message then starts with it
    :ivar refused: the code tried something the sandbox does not allow (as opposed to
        running out of time, steps, depth or memory)
    :ivar line: the line of the script where it stopped, when known
    """

    def __init__(self, message: str, *, refused: bool = False, line: int | None = None, element: str = ""):
        super().__init__(f"{element}: {message}" if element else message)
        self.notes: list[str] = []
        self.reason = message
        self.element = element
        self.refused = refused
        self.line = line

    def __str__(self) -> str:
        return ". ".join([str(self.args[0]), *self.notes])


class _Stop(BaseException):
    """Raised inside sandboxed code to end the run. Not an ``Exception``: ``except Exception``
    in the code does not catch it, and a bare ``except:`` is compiled as ``except Exception:``."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.message = message
        self.refused = refused


# --- the run: steps, deadline, depth, memory ------------------------------------------


class _Ceiling:
    """A process-wide address-space limit while at least one sandbox run needs it.

    ``setrlimit`` applies to the whole process, so the limit is set only while scripts
    run, at the current size plus :data:`MEMORY_HEADROOM_MB`, and restored when the last
    concurrent run ends. Other threads keep the same headroom meanwhile; only a run that
    eats all of it makes allocations fail, and that run then ends with a clear error.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[int, int] | None = None
        self._statm: tuple[int, int] | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    @property
    def available(self) -> bool:
        return _HAS_PROC and MEMORY_HEADROOM_MB > 0

    def _address_space(self) -> int:
        """The process's current size (``/proc/self/statm``, kept open per process: ~1 µs a read)."""
        pid = os.getpid()
        if self._statm is None or self._statm[0] != pid:  # first use, or a forked worker
            self._statm = (pid, os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
        return int(os.pread(self._statm[1], 128, 0).split()[0]) * self._page

    def acquire(self) -> bool:
        if not self.available:
            return False
        with self._lock:
            if self._users == 0:
                soft, hard = resource.getrlimit(resource.RLIMIT_AS)
                try:
                    target = self._address_space() + MEMORY_HEADROOM_MB * 1024 * 1024
                except (OSError, ValueError, IndexError):
                    return False
                if hard != resource.RLIM_INFINITY:
                    target = min(target, hard)
                if soft == resource.RLIM_INFINITY or soft > target:
                    resource.setrlimit(resource.RLIMIT_AS, (target, hard))
                    self._saved = (soft, hard)
                else:
                    self._saved = None  # an operator already set a tighter limit
            self._users += 1
        return True

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._saved is not None:
                resource.setrlimit(resource.RLIMIT_AS, self._saved)
                self._saved = None


_HAS_PROC = resource is not None and os.path.exists("/proc/self/statm")
_CEILING = _Ceiling()
_local = threading.local()


class _Run:
    """The budget of one evaluation or execution; sandboxed code reaches it through the hooks."""

    __slots__ = ("kind", "limits", "steps_left", "deadline", "depth", "built", "ceiling", "failure")

    def __init__(self, kind: str):
        self.kind = kind
        self.limits = LIMITS[kind]
        self.steps_left = self.limits.steps
        self.deadline = time.monotonic() + self.limits.seconds
        self.depth = 0
        self.built = 0
        self.ceiling = False
        self.failure: _Stop | None = None

    def stop(self, message: str, *, refused: bool = False) -> None:
        """End the run; once stopped, every later hook call stops it again (so a ``finally``
        that swallows the stop cannot keep the code running)."""
        if self.failure is None:
            self.failure = _Stop(message, refused)
        raise _Stop(self.failure.message, self.failure.refused)

    def tick(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0 or self.failure is not None:
            self.stop(f"{self.kind} exceeded its step budget ({self.limits.steps:,} steps)")
        if time.monotonic() > self.deadline:
            self.stop(f"{self.kind} exceeded its time budget ({self.limits.seconds:g} s)")

    def built_value(self, size: int) -> None:
        """Account for a value built by a guarded operation."""
        self.built += size
        if self.built > CEILING_AFTER and not self.ceiling:
            self.engage_ceiling()
            if not self.ceiling and self.built > MAX_BUILT_WITHOUT_CEILING:
                self.stop(f"{self.kind} exceeded its memory budget")

    def engage_ceiling(self) -> None:
        if not self.ceiling:
            self.ceiling = _CEILING.acquire()

    def release_ceiling(self) -> None:
        if self.ceiling:
            self.ceiling = False
            _CEILING.release()


def _current() -> _Run:
    run = getattr(_local, "run", None)
    if run is None:  # a function or iterator made by sandboxed code, used after its run ended
        raise SandboxError("sandboxed code cannot run outside its condition or script", refused=True)
    return run


def _refuse(message: str) -> None:
    _current().stop(message, refused=True)


# --- hooks called by the compiled code ------------------------------------------------

_NUMBERS = frozenset({int, float, bool, complex})
_SIZED = (str, bytes, list, tuple)
_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})


def _weight(value: Any, limit: int) -> int:
    """Characters or elements in ``value``, nested containers included (a list repeated
    inside another counts each time); stops counting once above ``limit``."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            total += len(item)
        elif kind in _CONTAINERS:
            total += len(item)
            if total > limit:
                return total
            values = item.values() if kind is dict else item
            stack.extend(v for v in values if type(v) in _CONTAINERS or type(v) is str)
        else:
            total += 1
        if total > limit:
            return total
    return total


def _check_size(size: int, what: str) -> None:
    if size > MAX_LENGTH:
        _refuse(f"{what} would have {size:,} characters or elements; the sandbox allows {MAX_LENGTH:,}")
    _current().built_value(size)


def _check_int_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        _refuse(f"{what} would be a number of about {bits:,} bits; the sandbox allows {MAX_INT_BITS:,}")


def _guarded_mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta in _NUMBERS and tb in _NUMBERS:
        if (ta is int or ta is bool) and (tb is int or tb is bool):
            _check_int_bits(a.bit_length() + b.bit_length(), "a product")
        return a * b
    if isinstance(a, _SIZED) and isinstance(b, int):
        sequence, times = a, b
    elif isinstance(b, _SIZED) and isinstance(a, int):
        sequence, times = b, a
    else:
        return a * b
    if times > 0:
        limit = MAX_LENGTH // times + 1
        _check_size(_weight(sequence, limit) * times, "a repetition")
    return a * b


def _guarded_pow(a: Any, b: Any) -> Any:
    if type(a) in (int, bool) and type(b) in (int, bool) and b > 0 and a not in (0, 1, -1):
        _check_int_bits(a.bit_length() * b, "a power")
    return a**b


def _guarded_lshift(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and a and b > 0:
        _check_int_bits(a.bit_length() + b, "a left shift")
    return a << b


def _guarded_add(a: Any, b: Any) -> Any:
    if type(a) in _SIZED and type(b) in _SIZED:
        size = len(a) + len(b)
        if size > 10_000:
            _check_size(size, "a concatenation")
    return a + b


_FORMAT_WIDTH = re.compile(r"%[^%a-zA-Z]*(\*|\d{5,})")


def _guarded_mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        pattern = a if isinstance(a, str) else a.decode("latin-1")
        if _FORMAT_WIDTH.search(pattern):
            _refuse("%-formatting with a computed or very large width or precision is not allowed")
        result = a % b
        if len(result) > 10_000:
            _check_size(len(result), "a formatted text")
        return result
    return a % b


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
}
_INPLACE_GUARDS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _guarded_add,
    "*=": _guarded_mul,
    "**=": _guarded_pow,
    "<<=": _guarded_lshift,
    "%=": _guarded_mod,
}


def _guarded_inplace(op: str, target: Any, value: Any) -> Any:
    guard = _INPLACE_GUARDS.get(op)
    if guard is not None and not (type(target) is list and op in ("+=", "*=")):
        return guard(target, value)
    if op == "+=" and type(target) is list and hasattr(value, "__len__"):
        _check_size(len(target) + len(value), "an extended list")
    elif op == "*=" and type(target) is list and isinstance(value, int) and value > 0:
        _check_size(_weight(target, MAX_LENGTH // value + 1) * value, "a repetition")
    function = _INPLACE.get(op)
    if function is None:
        _refuse(f"the operator {op} is not allowed")
    return function(target, value)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and key.startswith("_"):
        raise KeyError(key)
    return obj[key]


def _guarded_write(obj: Any) -> Any:
    """``x[k] = v`` and ``del x[k]`` on lists and dicts; nothing else may be changed in place."""
    if type(obj) in (dict, list):
        return obj
    _refuse(f"changing attributes or items of a {type(obj).__name__} is not allowed")


def _apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _ticking(run: _Run, iterator: Iterator[Any]) -> Iterator[Any]:
    for item in iterator:
        run.tick()
        yield item


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    return _ticking(_current(), iter(iterable))


def _tick() -> None:
    _current().tick()


def _function_guard(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a function or lambda defined by sandboxed code: each call is a step, and calls nest
    at most :data:`MAX_DEPTH` deep."""
    run = _current()

    def guarded(*args: Any, **kwargs: Any) -> Any:
        run.tick()
        run.depth += 1
        try:
            if run.depth > MAX_DEPTH:
                run.stop(f"{run.kind} exceeded its recursion limit ({MAX_DEPTH} nested calls)")
            return function(*args, **kwargs)
        finally:
            run.depth -= 1

    guarded.__name__ = getattr(function, "__name__", "function")
    return guarded


class _DiscardedPrint:
    """``print()`` in a script does nothing (there is nobody to read it)."""

    def __init__(self, _getattr_: Any = None):
        pass

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        return None

    def __call__(self) -> str:
        return ""


# --- attributes -----------------------------------------------------------------------

def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STR_SAFE = _names(
    "capitalize casefold count endswith find index isalnum isalpha isascii isdecimal isdigit isidentifier "
    "islower isnumeric isprintable isspace istitle isupper lower lstrip partition removeprefix removesuffix "
    "rfind rindex rpartition rsplit rstrip split splitlines startswith strip swapcase title upper"
)
_STR_GUARDED = frozenset({"center", "ljust", "rjust", "zfill", "join", "replace"})
_DATE = _names("ctime day isocalendar isoformat isoweekday month replace strftime toordinal weekday year")
_INT = frozenset({"bit_length", "conjugate", "denominator", "imag", "numerator", "real"})

#: Attributes (data and methods) sandboxed code may read, by the exact type of the object.
_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: _STR_SAFE | _STR_GUARDED,
    list: frozenset({"append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse",
                     "sort"}),
    dict: frozenset({"clear", "copy", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"}),
    set: frozenset({"add", "clear", "copy", "difference", "difference_update", "discard", "intersection",
                    "intersection_update", "isdisjoint", "issubset", "issuperset", "pop", "remove",
                    "symmetric_difference", "symmetric_difference_update", "union", "update"}),
    frozenset: frozenset({"copy", "difference", "intersection", "isdisjoint", "issubset", "issuperset",
                          "symmetric_difference", "union"}),
    tuple: frozenset({"count", "index"}),
    int: _INT,
    bool: _INT,
    float: frozenset({"as_integer_ratio", "conjugate", "imag", "is_integer", "real"}),
    complex: frozenset({"conjugate", "imag", "real"}),
    datetime.date: _DATE,
    datetime.datetime: _DATE | {"date", "hour", "minute", "second", "microsecond", "timestamp"},
    datetime.timedelta: frozenset({"days", "seconds", "microseconds", "total_seconds"}),
    type(datetime.date.today().isocalendar()): frozenset({"year", "week", "weekday"}),
}
#: Attributes of the classes themselves (``date.today()``, ``str.upper``, ``dict.fromkeys``).
_CLASS_ATTRIBUTES: dict[type, frozenset[str]] = {
    str: _STR_SAFE,
    dict: frozenset({"fromkeys"}),
    datetime.date: frozenset({"today", "fromisoformat", "fromordinal", "fromisocalendar", "min", "max"}),
    datetime.timedelta: frozenset({"min", "max", "resolution"}),
}


def _guard_str_method(text: str, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    if name in ("center", "ljust", "rjust", "zfill"):

        def padded(width: Any, *args: Any) -> Any:
            if isinstance(width, int):
                _check_size(width, f"str.{name}()")
            return method(width, *args)

        return padded
    if name == "join":

        def join(iterable: Any) -> str:
            items = list(iterable)
            size = len(text) * max(len(items) - 1, 0) + sum(len(i) for i in items if isinstance(i, str))
            _check_size(size, "str.join()")
            return method(items)

        return join

    def replace(old: Any, new: Any, count: Any = -1) -> Any:
        if isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
            found = text.count(old) if old else len(text) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            _check_size(len(text) + found * (len(new) - len(old)), "str.replace()")
        return method(old, new, count)

    return replace


def _guard_extend(target: list[Any], method: Callable[..., Any]) -> Callable[..., Any]:
    def extend(values: Any) -> None:
        if hasattr(values, "__len__"):
            _check_size(len(target) + len(values), "list.extend()")
        return method(values)

    return extend


def _describe_type(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    return f"a {type(obj).__name__}"


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """Attribute reads: only listed attributes of plain values; ``format`` and the like never."""
    if type(name) is not str or name.startswith("_"):
        _refuse(f"the attribute {name!r} is not allowed")
    kind = type(obj)
    allowed = _ATTRIBUTES.get(kind)
    if allowed is None and kind is type:
        allowed = _CLASS_ATTRIBUTES.get(obj)
    if allowed is None and isinstance(obj, BaseException):
        allowed = frozenset({"args"})
    if allowed is None or name not in allowed:
        _refuse(f"the attribute “{name}” of {_describe_type(obj)} is not available in the sandbox")
    value = getattr(obj, name, *default)
    if kind is str and name in _STR_GUARDED:
        return _guard_str_method(obj, name, value)
    if kind is list and name == "extend":
        return _guard_extend(obj, value)
    return value


# --- builtins -------------------------------------------------------------------------


def _safe_range(*args: Any) -> range:
    numbers = range(*args)
    try:
        size = len(numbers)
    except OverflowError:
        size = MAX_LENGTH + 1
    if size > MAX_LENGTH:
        _refuse(f"range() would have more than {MAX_LENGTH:,} numbers")
    _current().built_value(size)
    return numbers


def _safe_sum(iterable: Any, start: Any = 0) -> Any:
    if type(start) not in _NUMBERS:
        _refuse("sum() adds numbers only; use list.extend() or str.join() to combine lists or texts")
    return sum(iterable, start)


def _import_for_c_code(name: str, *args: Any, **kwargs: Any) -> Any:
    """``__import__`` for C code only: ``date.today()`` and ``strftime`` import ``time`` through the
    builtins of the calling code. Sandboxed code cannot name it (``_`` names and imports are refused)."""
    if name == "time" and not kwargs.get("level") and (len(args) < 4 or not args[3]):
        return time
    _refuse(f"importing {name} is not allowed")


#: The builtins of the sandbox: plain values, iteration and arithmetic, nothing that reaches
#: attributes by name, builds classes, imports, or opens anything.
BUILTINS: dict[str, Any] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "chr": chr, "dict": dict, "divmod": divmod,
    "enumerate": enumerate, "filter": filter, "float": float, "frozenset": frozenset, "int": int,
    "isinstance": isinstance, "len": len, "list": list, "map": map, "max": max, "min": min, "ord": ord,
    "range": _safe_range, "reversed": reversed, "round": round, "set": set, "sorted": sorted, "str": str,
    "sum": _safe_sum, "tuple": tuple, "zip": zip,
    "ArithmeticError": ArithmeticError, "AssertionError": AssertionError, "Exception": Exception,
    "IndexError": IndexError, "KeyError": KeyError, "LookupError": LookupError, "TypeError": TypeError,
    "ValueError": ValueError, "ZeroDivisionError": ZeroDivisionError,
    "__import__": _import_for_c_code,
}

#: Helpers a condition or script may call besides the builtins (process data of the same name wins).
HELPERS: dict[str, Any] = {
    "date": datetime.date,
    "timedelta": datetime.timedelta,
    "floor": math.floor,
    "ceil": math.ceil,
}

#: Builtins of plain Python that are absent on purpose; using one is logged as a refusal.
REFUSED_NAMES = _names(
    "getattr setattr delattr hasattr vars dir type globals locals open compile exec eval format breakpoint "
    "input help memoryview object super classmethod staticmethod property iter next aiter anext id hash "
    "callable issubclass exit quit bytearray bytes pow ascii repr license credits copyright"
)
#: Modules an escape attempt typically names; there are no modules in the sandbox (and no imports).
REFUSED_MODULES = _names(
    "os sys posix subprocess builtins importlib inspect operator functools gc ctypes socket shutil pathlib "
    "codecs pickle marshal multiprocessing asyncio pty"
)

_HOOKS: dict[str, Any] = {
    "__builtins__": BUILTINS,
    "_getattr_": _guarded_getattr,
    "_getitem_": _guarded_getitem,
    "_getiter_": _guarded_iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": _guarded_write,
    "_apply_": _apply,
    "_inplacevar_": _guarded_inplace,
    "_print_": _DiscardedPrint,
    "_tick_": _tick,
    "_fn_guard_": _function_guard,
    "_mul_": _guarded_mul,
    "_pow_": _guarded_pow,
    "_lshift_": _guarded_lshift,
    "_add_": _guarded_add,
    "_mod_": _guarded_mod,
}


# --- compilation ----------------------------------------------------------------------

_BINOP_HOOKS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_"}
_LOOPS = (ast.While, ast.For, ast.comprehension, ast.Lambda, ast.FunctionDef, ast.Starred)
_ALLOCATING = (ast.Call, ast.BinOp, ast.Subscript, ast.Attribute, ast.JoinedStr, ast.List, ast.Tuple, ast.Set,
               ast.Dict)
_BIG_NUMBER = re.compile(r"\d{5,}")


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, stricter, and instrumented for the budgets."""

    def _hook(self, name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
        copy_locations(call, like)
        return call

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        hook = _BINOP_HOOKS.get(type(node.op))
        return self._hook(hook, [node.left, node.right], node) if hook else node

    def visit_While(self, node: ast.While) -> Any:
        node = super().visit_While(node)
        tick = ast.Expr(self._hook("_tick_", [], node))
        copy_locations(tick, node)
        node.body.insert(0, tick)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node = super().visit_FunctionDef(node)
        guard = ast.Name("_fn_guard_", ast.Load())
        copy_locations(guard, node)
        node.decorator_list.append(guard)  # applied first, to the function itself
        return node

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = super().visit_Lambda(node)
        return self._hook("_fn_guard_", [node], node)

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self.error(node, "class definitions are not allowed.")
        return node

    def visit_Import(self, node: ast.Import) -> Any:
        self.error(node, "imports are not allowed.")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        self.error(node, "imports are not allowed.")
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        node = super().visit_ExceptHandler(node)
        if node.type is None:  # a bare except would catch the sandbox's stop
            node.type = ast.Name("Exception", ast.Load())
            copy_locations(node.type, node)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            if not all(isinstance(p, ast.Constant) for p in parts):
                self.error(node, "computed format specifications in f-strings are not allowed.")
            elif _BIG_NUMBER.search("".join(str(p.value) for p in parts)):
                self.error(node, "format widths or precisions of 10000 and more are not allowed.")
        return super().visit_FormattedValue(node)


@dataclass(frozen=True)
class _Compiled:
    code: CodeType
    heavy: bool  # loops, functions, or many operations: runs under the memory ceiling


def _is_heavy(tree: ast.AST) -> bool:
    """Code that can allocate more than a few times the size of its data: it has loops, comprehensions,
    functions or unpacking, or more than :data:`LIGHT_NODES` calls, operators, subscripts and literals.
    A light condition (``decision == 'approve'``, ``total > limit * 1.1``) skips the ceiling's system calls."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, _LOOPS):
            return True
        if isinstance(node, _ALLOCATING):
            count += 1
    return count > LIGHT_NODES


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
    heavy = _is_heavy(tree)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(tree, _FILENAMES[kind], policy=_Policy)
    except (RecursionError, MemoryError) as exc:
        raise _refused_at_compile(kind, text, f"too deeply nested ({type(exc).__name__})") from None
    if result.errors or result.code is None:
        raise _refused_at_compile(kind, text, "; ".join(result.errors) or "cannot be compiled")
    return _Compiled(result.code, heavy)


def compile_expression(expression: str) -> CodeType:
    """Compile a condition; raises :class:`ScriptError` naming what was refused."""
    return _compile(expression, "condition").code


def compile_script(script: str) -> CodeType:
    """Compile a script task's script; raises :class:`ScriptError` naming what was refused."""
    return _compile(script, "script").code


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
            if compiled.heavy or kind == "script":
                run.engage_ceiling()
            if kind == "condition":
                result = eval(compiled.code, scope)  # noqa: S307 - restricted, instrumented code object
            else:
                exec(compiled.code, scope)  # noqa: S102 - restricted, instrumented code object
                result = None
        finally:
            run.release_ceiling()
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


_MAX_NESTING = 50
_MISSING = object()


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
    if depth >= _MAX_NESTING:
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


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """SpiffWorkflow script environment backed by RestrictedPython and the budgets above.

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


def script_engine() -> PythonScriptEngine:
    """The engine deptflow gives SpiffWorkflow (engine code that builds its own engine should
    subclass :class:`SandboxScriptEngine` so that every error names its element)."""
    return SandboxScriptEngine(environment=SandboxEnvironment())
