"""Budgets of one run: the limits and the per-thread :class:`_Run` that counts steps, time,
recursion depth and what the code builds; and the bounds every C-level operation is checked
against *before* it runs (:func:`_expanded`, :func:`_check_size`, :func:`_check_int_bits`).

Sandboxed code reaches its run through the hooks (:mod:`.guards`), which call :func:`_current`;
a hook that finds no run (a function or iterator that outlived its run) refuses to work.

Nothing here is process-wide: memory is accounted per run (:data:`MAX_BUILT`), so a run that
exhausts its budget fails alone and never makes another user's run fail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import SandboxError, _Stop

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
#: Characters or elements all the operations of one run may build together (values are counted when
#: built, never credited back): about 10-100 MB at most, whatever runs beside it.
MAX_BUILT = 10_000_000
#: Deepest nesting of lists, tuples, dicts and sets an operation may compare, hash, render or save.
MAX_NESTING = 50
#: Most digits ``round()`` may round an integer to (``round(1, -10**7)`` would build ``10**10**7``).
MAX_ROUND_DIGITS = 3_000


# --- the run: steps, deadline, depth, memory ------------------------------------------


#: Per thread: the :class:`_Run` in progress (``run``) and, for error messages, the BPMN element
#: (``element``) or the SpiffWorkflow frame that called the environment (``caller``).
_local = threading.local()


class _Run:
    """The budget of one evaluation or execution; sandboxed code reaches it through the hooks."""

    __slots__ = ("kind", "limits", "steps_left", "deadline", "depth", "built", "failure")

    def __init__(self, kind: str):
        self.kind = kind
        self.limits = LIMITS[kind]
        self.steps_left = self.limits.steps
        self.deadline = time.monotonic() + self.limits.seconds
        self.depth = 0
        self.built = 0
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
        """Account for a value built by a guarded operation: the run's own memory budget."""
        self.built += size
        if self.built > MAX_BUILT:
            self.stop(f"{self.kind} exceeded its memory budget ({MAX_BUILT:,} characters or elements built)")


def _current() -> _Run:
    run = getattr(_local, "run", None)
    if run is None:  # a function or iterator made by sandboxed code, used after its run ended
        raise SandboxError("sandboxed code cannot run outside its condition or script", refused=True)
    return run


def _refuse(message: str) -> None:
    _current().stop(message, refused=True)


# --- sizes of the values the code builds ----------------------------------------------

_NUMBERS = frozenset({int, float, bool, complex})
_SIZED = (str, bytes, list, tuple)
_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})


def _scalar_size(value: Any) -> int:
    """What a plain value adds to the element that holds it: its length for text, its decimal digits
    for a large number, nothing for the rest."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value)
    if kind is int:
        bits = value.bit_length()
        return 0 if bits < 64 else bits // 3
    return 0


def _expanded(value: Any, limit: int = MAX_LENGTH) -> tuple[int, int]:
    """``(size, depth)`` of ``value`` fully expanded, as a comparison, a hash, ``str()`` or JSON
    would walk it: characters and elements, a list aliased twice inside another counted twice.

    Memoised on ``id``, so the cost is the number of *distinct* containers and their items, not the
    expanded size (``a = [a, a]`` 30 times is 30 lists, expanded 2**30). A cycle has no finite
    expansion: it comes back as ``(limit + 1, MAX_NESTING + 1)``. Sizes stop growing above ``limit``.
    """
    if type(value) not in _CONTAINERS:
        return _scalar_size(value), 0
    over = limit + 1
    memo: dict[int, tuple[int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, done = stack.pop()
        key = id(item)
        if done:
            active.discard(key)
            size, depth = len(item), 0
            for part in _parts(item):
                if type(part) in _CONTAINERS:
                    inner, inner_depth = memo[id(part)]
                    size += inner
                    if inner_depth > depth:
                        depth = inner_depth
                else:
                    size += _scalar_size(part)
                if size > limit:
                    size = over
                    break
            memo[key] = (size, depth + 1)
            if size > limit or depth >= MAX_NESTING:
                return over if size > limit else size, depth + 1
            continue
        if key in memo:
            continue
        if key in active:  # on the current path: a cycle
            return over, MAX_NESTING + 1
        active.add(key)
        stack.append((item, True))
        stack.extend((part, False) for part in _parts(item) if type(part) in _CONTAINERS and id(part) not in memo)
    return memo[id(value)]


def _parts(item: Any) -> Any:
    return (*item.keys(), *item.values()) if type(item) is dict else item


def _bounded(value: Any, what: str) -> Any:
    """Refuse ``value`` for ``what`` (a comparison, a hash, ``str()``…) when expanded it has more than
    :data:`MAX_LENGTH` characters or elements or more than :data:`MAX_NESTING` levels; else return it."""
    if type(value) in _CONTAINERS:
        size, depth = _expanded(value)
        if depth > MAX_NESTING:
            _refuse(f"{what} of values nested more than {MAX_NESTING} levels deep is not allowed")
        if size > MAX_LENGTH:
            _refuse(f"{what} of a value of more than {MAX_LENGTH:,} characters or elements (expanded) "
                    "is not allowed")
    return value


def _hashed(key: Any) -> Any:
    """A set element or dict key: a tuple or frozenset is hashed through everything it holds."""
    if type(key) is tuple or type(key) is frozenset:
        _bounded(key, "a hash")
    return key


def _hashed_all(items: Any) -> Any:
    if type(items) in _CONTAINERS and not {tuple, frozenset}.isdisjoint(map(type, items)):
        _bounded(items, "a hash")
    return items


def _ordered_all(items: Any, what: str) -> Any:
    """Sorting or picking the largest compares elements with each other: bounded when they are containers."""
    if type(items) in _CONTAINERS and not _CONTAINERS.isdisjoint(map(type, items)):
        _bounded(items, what)
    return items


def _materialised(iterable: Any) -> Any:
    return iterable if type(iterable) in _CONTAINERS or type(iterable) is str else list(iterable)


def _check_size(size: int, what: str) -> None:
    if size > MAX_LENGTH:
        _refuse(f"{what} would have {size:,} characters or elements; the sandbox allows {MAX_LENGTH:,}")
    _current().built_value(size)


def _check_int_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        _refuse(f"{what} would be a number of about {bits:,} bits; the sandbox allows {MAX_INT_BITS:,}")
