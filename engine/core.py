"""The engine object, assembled once by ``create_app``, the CLI and the tests.

It holds what every operation shares — the parsed-definition cache, SpiffWorkflow's
serializer, the script engine, the audit sealing — and makes the database sessions that
engine functions work on. A session made here carries the engine in ``session.info``,
so engine functions keep one argument (``session``) and no module holds global state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from SpiffWorkflow.bpmn.serializer.helpers.registry import DefaultRegistry
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from . import audit, audit_signing, clock, definitions, persistence
from .db import DelegateMapping, GroupMapping, Role
from .expressions import DeptflowScriptEngine
from .memo import Memo

if TYPE_CHECKING:
    from .definitions import ParsedDefinition

_INFO_KEY = "deptflow"


class WorkflowEngine:
    """Definition cache, serializer registry, script engine and the inbox sidebars' memo, and the sessions that
    use them.

    :param audit_key: the file of the key that signs the audit chain's heads (see :mod:`engine.audit_signing`);
        read once it exists (``deptflow init`` makes it); ``None``: heads are not signed
    """

    def __init__(self, *, cache_size: int = 64, audit_key: Path | None = None) -> None:
        clock.install_in_spiffworkflow()  # SpiffWorkflow's timers read the engine clock (tests move it)
        self.definitions = definitions.DefinitionCache(cache_size)
        #: the inbox sidebar's counts and steps per database, person, filters and change token (engine.task_filters)
        self.sidebars = Memo()
        self.serializer: DefaultRegistry = persistence.make_registry()
        self.audit_key = audit_key
        self._audit_signer: audit_signing.AuditSigner | None = None

    @property
    def audit_signer(self) -> audit_signing.AuditSigner | None:
        """The signer of :attr:`audit_key`, loaded the first time the file is there."""
        if self._audit_signer is None and self.audit_key is not None and self.audit_key.exists():
            self._audit_signer = audit_signing.load_signer(self.audit_key)
        return self._audit_signer

    def session_factory(self, bind: Engine) -> sessionmaker:
        """Sessions on ``bind`` that know this engine and seal their audit events at commit."""
        factory = sessionmaker(bind=bind, expire_on_commit=False, info={_INFO_KEY: self})
        audit.attach(factory)
        event.listen(factory, "after_flush", self._note_role_changes)
        return factory

    def _note_role_changes(self, session: Session, _context: object) -> None:
        """A role, group mapping or delegate mapping written through this engine is seen by the next step at once."""
        touched = (*session.new, *session.dirty, *session.deleted)
        if any(isinstance(row, (Role, GroupMapping, DelegateMapping)) for row in touched):
            self.definitions.forget_roles()

    @staticmethod
    def script_engine() -> DeptflowScriptEngine:
        return DeptflowScriptEngine()

    # --- workflow state ⇄ JSON (without the spec: it comes from the definition cache) ---

    def new_workflow(self, definition: ParsedDefinition) -> BpmnWorkflow:
        return BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=self.script_engine())

    def dump(self, workflow: BpmnWorkflow, bound: dict[str, int] | None = None) -> str:
        """The workflow's state; ``bound``: the versions of other files' processes the case calls
        (:func:`engine.definitions.bind`), kept with the state so that the case runs them to its end."""
        dct = self.serializer.convert(workflow)
        dct["deptflow_state"] = persistence.STATE_FORMAT
        if bound:
            dct[_CALLS_KEY] = bound
        return json.dumps(dct, separators=(",", ":"))

    def load(self, state: str, definition: ParsedDefinition) -> BpmnWorkflow:
        dct = json.loads(state)
        dct.pop("deptflow_state", None)
        dct.pop(_CALLS_KEY, None)
        workflow = self.serializer.restore(dct, spec=definition.spec, subprocess_specs=definition.subprocess_specs)
        workflow.script_engine = self.script_engine()
        return workflow


_CALLS_KEY = "deptflow_calls"


def bound_calls(state: str | None) -> dict[str, int] | None:
    """The versions of called processes a case's saved state recorded (None for a case that calls none:
    the text is only decoded when it names them)."""
    if not state or f'"{_CALLS_KEY}"' not in state:
        return None
    recorded = json.loads(state).get(_CALLS_KEY) or {}
    return {str(key): int(value) for key, value in recorded.items()} or None


def of(session: Session) -> WorkflowEngine:
    """The engine whose factory made ``session``."""
    try:
        return session.info[_INFO_KEY]
    except KeyError:
        raise RuntimeError("this session was not made by WorkflowEngine.session_factory()") from None
