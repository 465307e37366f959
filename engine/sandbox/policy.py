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

from .budget import (
    _CONTAINERS,
    _NUMBERS,
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_ROUND_DIGITS,
    _bounded,
    _check_size,
    _current,
    _hashed,
    _hashed_all,
    _materialised,
    _ordered_all,
    _refuse,
)

# --- attributes -----------------------------------------------------------------------


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STR_SAFE = _names(
    "capitalize casefold count endswith find index isalnum isalpha isascii isdecimal isdigit isidentifier "
    "islower isnumeric isprintable isspace istitle isupper lower lstrip partition removeprefix removesuffix "
    "rfind rindex rpartition rsplit rstrip split splitlines startswith strip swapcase title upper"
)
_STR_GUARDED = frozenset({"center", "ljust", "rjust", "zfill", "join", "replace", "upper", "lower", "casefold",
                          "swapcase", "title", "capitalize", "split", "rsplit", "splitlines"})
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


def _safe_round(number: Any, ndigits: Any = None) -> Any:
    if type(ndigits) is int and abs(ndigits) > MAX_ROUND_DIGITS:
        _refuse(f"round() to {ndigits:,} digits; the sandbox allows {MAX_ROUND_DIGITS:,}")
    return round(number, ndigits)


def _safe_sorted(iterable: Any, /, **kwargs: Any) -> list[Any]:
    items = _materialised(iterable)
    _ordered_all(items, "sorting")
    _current().built_value(len(items))
    return sorted(items, **kwargs)


def _extreme(function: Any) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        items = _materialised(args[0]) if len(args) == 1 else args
        _ordered_all(items, f"{function.__name__}()")
        return function(items, **kwargs)

    guarded.__name__ = function.__name__
    return guarded


# Stand-ins for the builtin classes whose constructors can do unbounded work in C: ``int`` parses
# text of any length in bases 2, 4, 8, 16, 32 (``int('f'*999999, 16)``: 4,000,000 bits), ``str``
# renders aliased containers expanded, ``set``/``frozenset``/``dict`` hash tuples through everything
# they hold. Each is a subclass whose constructor checks, then returns a value of the real class;
# ``isinstance(x, int)`` and ``issubclass`` answer for the real class.


class _StandIn(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__mro__[1])

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, cls.__mro__[1])

    def __repr__(cls) -> str:
        return f"<class '{cls.__mro__[1].__name__}'>"


_BITS_PER_DIGIT = {base: math.log2(base) for base in range(2, 37)}


class _Int(int, metaclass=_StandIn):
    def __new__(cls, value: Any = 0, *base: Any) -> Any:  # type: ignore[misc]
        if isinstance(value, (str, bytes)):
            radix = base[0] if base else 10
            per_digit = _BITS_PER_DIGIT.get(radix, 4.0) if isinstance(radix, int) else 4.0
            bits = int(len(value) * per_digit)
            if bits > MAX_INT_BITS:
                _refuse(f"int() of {len(value):,} digits would be a number of about {bits:,} bits; "
                        f"the sandbox allows {MAX_INT_BITS:,}")
        return int(value, *base)


class _Str(str, metaclass=_StandIn):
    def __new__(cls, value: Any = "", *args: Any) -> Any:  # type: ignore[misc]
        if type(value) in _CONTAINERS:
            _bounded(value, "str()")
        result = str(value, *args)
        if len(result) > 10_000:
            _check_size(len(result), "str()")
        return result


class _Set(set, metaclass=_StandIn):  # type: ignore[type-arg]
    def __new__(cls, iterable: Any = ()) -> Any:  # type: ignore[misc]
        return set(_hashed_all(_materialised(iterable)))


class _FrozenSet(frozenset, metaclass=_StandIn):  # type: ignore[type-arg]
    def __new__(cls, iterable: Any = ()) -> Any:  # type: ignore[misc]
        return frozenset(_hashed_all(_materialised(iterable)))


class _Dict(dict, metaclass=_StandIn):  # type: ignore[type-arg]
    def __new__(cls, source: Any = (), **kwargs: Any) -> Any:  # type: ignore[misc]
        if type(source) is not dict:
            source = _materialised(source)
            for pair in source:
                if type(pair) in (tuple, list) and pair:
                    _hashed(pair[0])
        return dict(source, **kwargs)


def _import_for_c_code(name: str, *args: Any, **kwargs: Any) -> Any:
    """``__import__`` for C code only: ``date.today()`` and ``strftime`` import ``time`` through the
    builtins of the calling code. Sandboxed code cannot name it (``_`` names and imports are refused)."""
    if name == "time" and not kwargs.get("level") and (len(args) < 4 or not args[3]):
        return time
    _refuse(f"importing {name} is not allowed")


#: The builtins of the sandbox: plain values, iteration and arithmetic, nothing that reaches
#: attributes by name, builds classes, imports, or opens anything.
BUILTINS: dict[str, Any] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "chr": chr, "dict": _Dict, "divmod": divmod,
    "enumerate": enumerate, "filter": filter, "float": float, "frozenset": _FrozenSet, "int": _Int,
    "isinstance": isinstance, "len": len, "list": list, "map": map, "max": _extreme(max), "min": _extreme(min),
    "ord": ord, "range": _safe_range, "reversed": reversed, "round": _safe_round, "set": _Set,
    "sorted": _safe_sorted, "str": _Str, "sum": _safe_sum, "tuple": tuple, "zip": zip,
    "ArithmeticError": ArithmeticError, "AssertionError": AssertionError, "Exception": Exception,
    "IndexError": IndexError, "KeyError": KeyError, "LookupError": LookupError, "TypeError": TypeError,
    "ValueError": ValueError, "ZeroDivisionError": ZeroDivisionError,
    "__import__": _import_for_c_code,
}

_CLASS_ATTRIBUTES[_Str] = _CLASS_ATTRIBUTES[str]
_CLASS_ATTRIBUTES[_Dict] = _CLASS_ATTRIBUTES[dict]

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

_BINOP_HOOKS = {ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Add: "_add_", ast.Mod: "_mod_",
                ast.Sub: "_sub_", ast.Div: "_truediv_", ast.FloorDiv: "_floordiv_", ast.RShift: "_rshift_",
                ast.BitAnd: "_and_", ast.BitOr: "_or_", ast.BitXor: "_xor_", ast.MatMult: "_matmul_"}
_COMPARE_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                ast.In: "in", ast.NotIn: "not in"}
_STRFTIME_SPEC = re.compile(r"%[-_0^#]*\d{3,}")
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

    def visit_Compare(self, node: ast.Compare) -> Any:
        """``a == b`` becomes ``_compare_(a, '==', b)``; in a chain (``a < b < c``) each operand that is
        not a literal goes through ``_compared_``. ``is`` never walks anything."""
        node = self.node_contents_visit(node)
        if len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_OPS:
            op = ast.Constant(_COMPARE_OPS[type(node.ops[0])])
            copy_locations(op, node)
            return self._hook("_compare_", [node.left, op, node.comparators[0]], node)
        if all(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
            return node
        node.left = self._operand(node.left)
        node.comparators = [self._operand(c) for c in node.comparators]
        return node

    def _operand(self, node: ast.expr) -> ast.expr:
        return node if isinstance(node, ast.Constant) else self._hook("_compared_", [node], node)

    def _key(self, node: ast.expr | None) -> ast.expr | None:
        """A set element or dict key that may be a tuple (hashed through all it holds)."""
        if node is None or isinstance(node, (ast.Constant, ast.Starred, ast.JoinedStr)):
            return node
        return self._hook("_hashed_", [node], node)

    def visit_Set(self, node: ast.Set) -> Any:
        node = self.node_contents_visit(node)
        node.elts = [self._key(e) for e in node.elts]
        return node

    def visit_Dict(self, node: ast.Dict) -> Any:
        node = self.node_contents_visit(node)
        node.keys = [self._key(k) for k in node.keys]
        return node

    def visit_SetComp(self, node: ast.SetComp) -> Any:
        node = super().visit_SetComp(node)
        node.elt = self._key(node.elt)
        return node

    def visit_DictComp(self, node: ast.DictComp) -> Any:
        node = super().visit_DictComp(node)
        node.key = self._key(node.key)
        return node

    def visit_Constant(self, node: ast.Constant) -> Any:
        if type(node.value) is int and node.value.bit_length() > MAX_INT_BITS:
            self.error(node, f"numbers of more than {MAX_INT_BITS:,} bits are not allowed.")
        return super().visit_Constant(node)

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
            elif _STRFTIME_SPEC.search("".join(str(p.value) for p in parts)):
                self.error(node, "date format fields wider than 99 characters are not allowed.")
        node = super().visit_FormattedValue(node)
        node.value = self._hook("_formatted_", [node.value], node.value)
        return node
