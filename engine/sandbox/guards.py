"""Guards: the functions the compiled code calls instead of plain operations (RestrictedPython's
``_getattr_``, ``_getitem_``, ``_getiter_``, ``_write_``… and deptflow's ``_mul_``, ``_pow_``,
``_tick_``, ``_fn_guard_``…), bound to those names in :data:`_HOOKS`.

Each guard checks its operation against the policy (:mod:`.policy`) and the budget of the
current run (:mod:`.budget`) before doing it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from .budget import (
    _NUMBERS,
    _SIZED,
    MAX_DEPTH,
    MAX_LENGTH,
    _check_int_bits,
    _check_size,
    _current,
    _refuse,
    _Run,
    _weight,
)
from .errors import _describe_type
from .policy import _ATTRIBUTES, _CLASS_ATTRIBUTES, _STR_GUARDED, BUILTINS

# --- operators ------------------------------------------------------------------------


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


# --- calls, iteration, loops and functions --------------------------------------------


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


# --- the hooks ------------------------------------------------------------------------

#: The names the compiled code calls, bound to the builtins and the guards; set last in the
#: scope of every run, so process data cannot replace them.
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
