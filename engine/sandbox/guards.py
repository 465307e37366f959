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
    _CONTAINERS,
    _NUMBERS,
    _SIZED,
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_LENGTH,
    _bounded,
    _check_int_bits,
    _check_size,
    _current,
    _expanded,
    _hashed,
    _hashed_all,
    _materialised,
    _ordered_all,
    _refuse,
    _Run,
)
from .errors import _describe_type
from .policy import _ATTRIBUTES, _CLASS_ATTRIBUTES, _STR_GUARDED, BUILTINS

# --- operators ------------------------------------------------------------------------
#
# Every binary operator goes through a guard. Numbers: no operand and no product, power or shift
# may exceed MAX_INT_BITS, so no division, remainder or sum can take long either (the 6.8 s
# ``int('f'*999999, 16) // …`` of issue 13 needs operands of millions of bits). Sequences: a
# repetition or concatenation is measured (expanded, aliasing-safe) before it is built.


def _check_operands(a: Any, b: Any, what: str) -> None:
    """Refuse an integer operand above :data:`MAX_INT_BITS` (data can bring one of ~14,000 bits)."""
    for value in (a, b):
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            _refuse(f"{what} of a number of {value.bit_length():,} bits; the sandbox allows {MAX_INT_BITS:,}")


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
        _check_size(_expanded(sequence, MAX_LENGTH // times + 1)[0] * times, "a repetition")
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
    ta, tb = type(a), type(b)
    if ta is int or tb is int:
        _check_operands(a, b, "a sum")
    elif ta in _SIZED and tb in _SIZED:
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
        _bounded(b, "%-formatting")
        result = a % b
        if len(result) > 10_000:
            _check_size(len(result), "a formatted text")
        return result
    _check_operands(a, b, "a remainder")
    return a % b


def _arithmetic(function: Callable[[Any, Any], Any], what: str) -> Callable[[Any, Any], Any]:
    """The guard of an operator whose result is no larger than its operands (``-``, ``//``, ``&``…)."""

    def guarded(a: Any, b: Any) -> Any:
        if type(a) is int or type(b) is int:
            _check_operands(a, b, what)
        return function(a, b)

    return guarded


_guarded_sub = _arithmetic(operator.sub, "a difference")
_guarded_truediv = _arithmetic(operator.truediv, "a division")
_guarded_floordiv = _arithmetic(operator.floordiv, "a division")
_guarded_rshift = _arithmetic(operator.rshift, "a right shift")
_guarded_and = _arithmetic(operator.and_, "a bitwise and")
_guarded_or = _arithmetic(operator.or_, "a bitwise or")
_guarded_xor = _arithmetic(operator.xor, "a bitwise xor")
_guarded_matmul = _arithmetic(operator.matmul, "a matrix product")


_INPLACE_GUARDS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": _guarded_add,
    "-=": _guarded_sub,
    "*=": _guarded_mul,
    "/=": _guarded_truediv,
    "//=": _guarded_floordiv,
    "%=": _guarded_mod,
    "**=": _guarded_pow,
    "<<=": _guarded_lshift,
    ">>=": _guarded_rshift,
    "&=": _guarded_and,
    "|=": _guarded_or,
    "^=": _guarded_xor,
}


def _guarded_inplace(op: str, target: Any, value: Any) -> Any:
    """``x op= y``: lists grow in place (``+=``, ``*=``) after a size check; everything else is ``x = x op y``."""
    if type(target) is list and op == "+=":
        if hasattr(value, "__len__"):
            _check_size(len(target) + len(value), "an extended list")
        target += value
        return target
    if type(target) is list and op == "*=":
        if isinstance(value, int) and value > 0:
            _check_size(_expanded(target, MAX_LENGTH // value + 1)[0] * value, "a repetition")
        target *= value
        return target
    guard = _INPLACE_GUARDS.get(op)
    if guard is None:
        _refuse(f"the operator {op} is not allowed")
    return guard(target, value)


# --- comparisons and hashing ------------------------------------------------------------
#
# Comparing or hashing containers walks them in C, aliasing expanded (two lists made by doubling
# ``a = [a, a]`` 27 times compare 2**27 items). Containers are measured first (:func:`_expanded`,
# memoised on id: the cost is the number of distinct containers).

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}


def _guarded_compare(a: Any, op: str, b: Any) -> Any:
    """``a op b``: when ``a`` is a container, both sides are bounded first. A scalar compared with
    anything, or looked up in a container, costs at most one pass over it (a scalar and a container
    are unequal at once)."""
    if type(a) in _CONTAINERS:
        _bounded(a, "a comparison")
        _bounded(b, "a comparison")
    return _COMPARE[op](a, b)


def _compared(value: Any) -> Any:
    """An operand of a chained comparison (``a < b < c``), bounded when it is a container."""
    if type(value) in _CONTAINERS:
        _bounded(value, "a comparison")
    return value




def _guarded_getitem(obj: Any, key: Any) -> Any:
    if isinstance(key, str) and key.startswith("_"):
        raise KeyError(key)
    if type(key) is tuple:
        _hashed(key)
    return obj[key]


def _guarded_write(obj: Any) -> Any:
    """``x[k] = v`` and ``del x[k]`` on lists and dicts; nothing else may be changed in place."""
    if type(obj) in (dict, list):
        return obj
    _refuse(f"changing attributes or items of a {type(obj).__name__} is not allowed")


def _formatted(value: Any) -> Any:
    """A value rendered by an f-string: a container is rendered expanded, so it is bounded first."""
    if type(value) in _CONTAINERS:
        _bounded(value, "an f-string")
    return value


# --- calls, iteration, loops and functions --------------------------------------------


def _apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def _ticking(run: _Run, iterator: Iterator[Any]) -> Iterator[Any]:
    for item in iterator:
        run.tick()
        yield item


def _guarded_iter(iterable: Any) -> Iterator[Any]:
    if type(iterable) is dict:
        iterable = _visible_keys(iterable)
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


_CASE_MAPPING = frozenset({"upper", "lower", "casefold", "swapcase", "title", "capitalize"})
_SPLITTING = frozenset({"split", "rsplit", "splitlines"})
_STRFTIME_WIDTH = re.compile(r"%[-_0^#]*(\d+)")
#: Widest field a ``strftime`` directive may pad to (``%999Y`` is 999 characters).
MAX_STRFTIME_WIDTH = 100


def _guard_str_method(text: str, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    if name in _CASE_MAPPING:

        def mapped(*args: Any) -> Any:
            # Unicode case mapping can triple a text ('\ufb03'.upper() == 'FFI'); ASCII keeps its length.
            _check_size(len(text) if text.isascii() else 3 * len(text), f"str.{name}()")
            return method(*args)

        return mapped
    if name in _SPLITTING:

        def split(*args: Any, **kwargs: Any) -> Any:
            _check_size(len(text) + 1, f"str.{name}()")
            return method(*args, **kwargs)

        return split
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


def _guard_strftime(method: Callable[..., Any]) -> Callable[..., Any]:
    def strftime(pattern: Any) -> Any:
        if isinstance(pattern, str):
            widths = [int(w) for w in _STRFTIME_WIDTH.findall(pattern)]
            if any(w > MAX_STRFTIME_WIDTH for w in widths):
                _refuse(f"strftime() with a field width above {MAX_STRFTIME_WIDTH} is not allowed")
            # No directive renders more than ~30 characters (%c): 16 per pattern character is generous.
            _check_size(16 * len(pattern) + sum(widths), "strftime()")
        return method(pattern)

    return strftime


def _guard_extend(target: list[Any], method: Callable[..., Any]) -> Callable[..., Any]:
    def extend(values: Any) -> None:
        if hasattr(values, "__len__"):
            _check_size(len(target) + len(values), "list.extend()")
        return method(values)

    return extend


def _guard_list_method(target: list[Any], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``index``, ``count``, ``remove`` compare a value with the elements; ``sort`` compares elements."""
    if name == "sort":

        def sort(*args: Any, **kwargs: Any) -> Any:
            _ordered_all(target, "sorting")
            return method(*args, **kwargs)

        return sort

    def compare(value: Any, *args: Any) -> Any:
        if type(value) in _CONTAINERS:
            _bounded(value, "a comparison")
            _bounded(target, "a comparison")
        return method(value, *args)

    return compare


# Keys starting with ``_`` are as invisible to the dict methods and to iteration as they are to
# ``d['_key']``.


def _hidden(key: Any) -> bool:
    return type(key) is str and key[:1] == "_"


def _visible_keys(mapping: dict[Any, Any]) -> Any:
    return [k for k in mapping if not _hidden(k)] if any(map(_hidden, mapping)) else mapping


def _guard_dict_method(target: dict[Any, Any], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    if name in ("get", "pop", "setdefault"):

        def lookup(key: Any, *default: Any) -> Any:
            if _hidden(key):
                if name == "get":
                    return default[0] if default else None
                if name == "pop" and default:
                    return default[0]
                raise KeyError(key)
            return method(_hashed(key), *default)

        return lookup

    def view() -> Any:
        keys = _visible_keys(target)
        if keys is target:
            return method()
        if name == "keys":
            return keys
        if name == "values":
            return [target[k] for k in keys]
        if name == "items":
            return [(k, target[k]) for k in keys]
        return {k: target[k] for k in keys}  # copy

    return view


_DICT_GUARDED = frozenset({"get", "pop", "setdefault", "keys", "values", "items", "copy"})


def _guard_set_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def hashing(*values: Any) -> Any:
        if name in ("add", "remove", "discard"):
            _hashed(values[0] if values else None)
        else:
            for value in values:
                _hashed_all(value)
        return method(*values)

    return hashing


def _unbound_str(name: str) -> Callable[..., Any]:
    """``str.upper`` and the like read from the class: the same guards as on a text."""

    def unbound(text: Any, *args: Any, **kwargs: Any) -> Any:
        if type(text) is not str:
            _refuse(f"str.{name}() needs a text, not {_describe_type(text)}")
        return _guarded_getattr(text, name)(*args, **kwargs)

    unbound.__name__ = name
    return unbound


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """Attribute reads: only listed attributes of plain values; ``format`` and the like never."""
    if type(name) is not str or name.startswith("_"):
        _refuse(f"the attribute {name!r} is not allowed")
    kind = type(obj)
    allowed = _ATTRIBUTES.get(kind)
    if allowed is None and isinstance(obj, type):
        allowed = _CLASS_ATTRIBUTES.get(obj)
    if allowed is None and isinstance(obj, BaseException):
        allowed = frozenset({"args"})
    if allowed is None or name not in allowed:
        _refuse(f"the attribute “{name}” of {_describe_type(obj)} is not available in the sandbox")
    value = getattr(obj, name, *default)
    if kind is str:
        return _guard_str_method(obj, name, value) if name in _STR_GUARDED else value
    if kind is dict:
        return _guard_dict_method(obj, name, value) if name in _DICT_GUARDED else value
    if kind is list:
        if name == "extend":
            return _guard_extend(obj, value)
        return _guard_list_method(obj, name, value) if name in ("index", "count", "remove", "sort") else value
    if kind is set or kind is frozenset:
        return _guard_set_method(name, value) if callable(value) else value
    if name == "strftime":
        return _guard_strftime(value)
    if obj is str or obj is BUILTINS["str"]:
        return _unbound_str(name) if name in _STR_GUARDED else value
    if name == "fromkeys":
        return lambda keys, *value_: value(_hashed_all(_materialised(keys)), *value_)
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
    "_sub_": _guarded_sub,
    "_truediv_": _guarded_truediv,
    "_floordiv_": _guarded_floordiv,
    "_rshift_": _guarded_rshift,
    "_and_": _guarded_and,
    "_or_": _guarded_or,
    "_xor_": _guarded_xor,
    "_matmul_": _guarded_matmul,
    "_compare_": _guarded_compare,
    "_compared_": _compared,
    "_hashed_": _hashed,
    "_formatted_": _formatted,
}
