"""The errors of the sandbox: :class:`SandboxError`, which callers see, and :class:`_Stop`,
which ends a run from inside sandboxed code; plus how a value is named in their messages."""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.exceptions import WorkflowException

from ..errors import ScriptError


class SandboxError(ScriptError, WorkflowException):
    """A condition or script was refused, or ran out of its budget.

    Also a SpiffWorkflow exception, so that any SpiffWorkflow script engine passes the
    message on (it replaces other errors of conditions by a generic one).

    :ivar reason: what happened, without the element
    :ivar element: the BPMN element that ran the code (``[id] “name”``), when known; the
        message then starts with it
    :ivar refused: the code tried something the sandbox does not allow (as opposed to
        running out of time, steps, depth or memory)
    :ivar line: the line of the script where it stopped, when known
    """

    def __init__(self, message: str, *, refused: bool = False, line: int | None = None, element: str = ""):
        super().__init__(f"{element}: {message}" if element else message)
        self.notes: list[str] = []
        self.reason = message
        self.element = element
        self.refused = refused
        self.line = line

    def __str__(self) -> str:
        return ". ".join([str(self.args[0]), *self.notes])


class _Stop(BaseException):
    """Raised inside sandboxed code to end the run. Not an ``Exception``: ``except Exception``
    in the code does not catch it, and a bare ``except:`` is compiled as ``except Exception:``."""

    def __init__(self, message: str, refused: bool):
        super().__init__(message)
        self.message = message
        self.refused = refused


def _describe_type(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__name__}"
    return f"a {type(obj).__name__}"
