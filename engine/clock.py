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
