"""The engine's clock: naive UTC datetimes, replaceable in tests (timers, due dates)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """Current UTC time without tzinfo (stored the same way on SQLite and PostgreSQL)."""
    if _source is not None:
        return _source()
    return datetime.now(UTC).replace(tzinfo=None)


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Install a clock for tests; ``None`` restores the real one."""
    global _source
    _source = source


class _EngineClockDatetime(datetime):
    """``datetime`` whose ``now()`` reads the engine clock (for SpiffWorkflow's timer module)."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        moment = utcnow().replace(tzinfo=UTC)
        return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)


def install_in_spiffworkflow() -> None:
    """Make SpiffWorkflow's timers use this clock, so that tests move time instead of sleeping.

    SpiffWorkflow reads ``datetime.now(timezone.utc)`` inside its timer module; there is no hook,
    so the module's ``datetime`` name is pointed at a subclass whose ``now`` asks :func:`utcnow`.
    """
    from SpiffWorkflow.bpmn.specs.event_definitions import timer

    timer.datetime = _EngineClockDatetime
