"""Budgets of one run: the limits, the memory ceiling, and the per-thread :class:`_Run` that counts
steps, time, recursion depth and the size of the values the code builds.

Sandboxed code reaches its run through the hooks (:mod:`.guards`), which call :func:`_current`;
a hook that finds no run (a function or iterator that outlived its run) refuses to work.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import SandboxError, _Stop

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
#: Per thread: the :class:`_Run` in progress (``run``) and, for error messages, the BPMN element
#: (``element``) or the SpiffWorkflow frame that called the environment (``caller``).
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


# --- sizes of the values the code builds ----------------------------------------------

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
