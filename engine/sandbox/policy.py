"""What sandboxed code may do: the compile-time policy (:class:`_Policy`) and the whitelists it
runs with at run time (attributes by type, :data:`BUILTINS`, :data:`HELPERS`), plus the names
that are absent on purpose (:data:`REFUSED_NAMES`, :data:`REFUSED_MODULES`).

Only the builtins :func:`range` and :func:`sum` are replaced by guarded versions here; the
guards that enforce the attribute whitelist and watch operators, loops and calls are in
:mod:`.guards`.
"""

from __future__ import annotations

import ast
import datetime
import math
import re
import time
from typing import Any

from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from .budget import _NUMBERS, MAX_LENGTH, _current, _refuse

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


# --- compilation ----------------------------------------------------------------------

_BINOP_HOOKS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_"}
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
