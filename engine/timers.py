"""BPMN timers: when is an instance's next timer due.

Every operation stores the instance's earliest waiting timer in ``next_timer_at`` (indexed),
in the same transaction; :mod:`engine.worker` polls that column and fires due timers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

TIMER_TYPES = {"DurationTimerEventDefinition", "TimeDateEventDefinition", "CycleTimerEventDefinition"}


def next_timer_at(workflow: Any) -> datetime | None:
    """The earliest due time of the workflow's waiting timers (naive UTC), or ``None``."""
    moments = []
    for event in workflow.waiting_events():
        if event.event_type not in TIMER_TYPES or event.value is None:
            continue
        value = event.value["next"] if isinstance(event.value, dict) else event.value
        try:
            moment = TimerEventDefinition.get_datetime(str(value))
        except ValueError:
            continue
        moments.append(moment.astimezone(UTC).replace(tzinfo=None))
    return min(moments, default=None)
