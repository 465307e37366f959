"""Domain errors. The web layer maps each to one HTTP status in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class DeptflowError(Exception):
    """Base class of every error the engine reports to a user."""

    status = 400


class NotFound(DeptflowError):
    status = 404


class NotAllowed(DeptflowError):
    status = 403


class Conflict(DeptflowError):
    status = 409


class TaskAlreadyCompleted(Conflict):
    """A second completion lost the race (or came late): says who won and when."""

    def __init__(self, task_name: str, completed_by: str, completed_at: datetime | None):
        self.task_name = task_name
        self.completed_by = completed_by
        self.completed_at = completed_at
        when = completed_at.strftime("%Y-%m-%d %H:%M:%S UTC") if completed_at else "earlier"
        super().__init__(f"“{task_name}” was already completed by {completed_by} at {when}.")


class TaskNoLongerOpen(Conflict):
    """The task was cancelled or withdrawn while the user was looking at it."""


class LoginLocked(DeptflowError):
    """Too many failed logins from one address (at one username, or at all): refused until ``until`` (naive UTC)."""

    status = 429

    def __init__(self, until: datetime):
        self.until = until
        super().__init__(f"Too many failed logins. Try again after {until:%H:%M:%S} UTC.")


class DirectoryUnavailable(DeptflowError):
    """The LDAP server or OpenID provider cannot be asked: directory accounts cannot log in, local ones can."""

    status = 503


class InvalidForm(DeptflowError):
    """Per-field validation errors; ``values`` keeps what the user typed."""

    status = 422

    def __init__(self, errors: dict[str, str], values: dict[str, Any]):
        self.errors = errors
        self.values = values
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class Problem:
    """One problem found in a BPMN diagram, tied to an element id when there is one.

    ``severity``: ``error`` blocks deploying, ``warning`` must be acknowledged, ``note`` is information.
    ``kind`` ``mapping`` marks an error the process owner fixes by mapping the model to deptflow (a group
    that is not a role, a Java delegate that needs a script task) rather than by redesigning it; ``group`` is
    then the group id an administrator maps to a role (:mod:`engine.groups`), when that is the fix;
    ``delegate`` the Java class name or delegate expression an administrator maps to an external task topic
    (:mod:`engine.delegates`).
    """

    message: str
    element_id: str | None = None
    severity: str = "error"
    kind: str = ""
    group: str = ""
    delegate: str = ""

    def __str__(self) -> str:
        where = f"[{self.element_id}] " if self.element_id else ""
        return f"{self.severity}: {where}{self.message}"


class InvalidDefinition(DeptflowError):
    status = 422

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("The BPMN diagram has problems:\n" + "\n".join(f"  - {p}" for p in problems))


class NotBpmn(InvalidDefinition):
    """The file is no BPMN diagram at all (not UTF-8, not XML, DTDs, another root): a bad request, where
    :class:`InvalidDefinition` is a diagram that cannot be published as it is."""

    status = 400


class DiagramTooLarge(NotBpmn):
    status = 413


class ScriptError(DeptflowError):
    """A condition or script failed or was refused by the sandbox."""

    status = 500
