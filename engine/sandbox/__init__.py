"""Restricted evaluation of BPMN conditions and script tasks.

SpiffWorkflow's default environment calls plain ``eval``/``exec``; a diagram edited in
the browser must never reach the host. Conditions and scripts therefore go through
four layers:

1. **Compilation** with RestrictedPython and an extra policy (:class:`.policy._Policy`): no
   imports, no class definitions, no names or attributes starting with ``_``, no
   computed f-string format specifications. The policy also instruments the code:
   arithmetic that can blow up (``*``, ``**``, ``<<``, ``+``, ``%``) calls a guard,
   every ``while`` body and every iteration counts a step, and every function or
   lambda is wrapped so that calls count steps and recursion depth.
2. **A small whitelist** of builtins (:data:`BUILTINS`) and helpers (:data:`HELPERS`);
   ``getattr``, ``type``, ``vars``, ``open``, ``__import__``… do not exist in the sandbox.
   Attribute access is allowed only on plain values (text, numbers, lists, dicts, sets,
   dates) and only for a listed set of methods: ``str.format`` and friends, generator
   frames, function internals and everything else are refused.
3. **Budgets** per run (:data:`LIMITS`): a number of steps and a wall-clock deadline,
   a recursion depth, a size cap on each value an operator or method builds, and a
   memory ceiling (an address-space limit of the process at a fixed headroom above its
   current size, set for the duration of a script and restored right after;
   ``DEPTFLOW_SANDBOX_MEMORY_MB``, 0 disables it). A light condition (no loops or
   functions, a handful of operations) runs without the ceiling and without step
   accounting unless it starts building large values.
4. **Clear errors**: a refusal or an exhausted budget stops the run with a
   :class:`SandboxError` (a :class:`~engine.errors.ScriptError`) and a warning on the
   ``deptflow.sandbox`` logger. Inside the sandbox the stop is not an ``Exception``, so
   ``try``/``except`` in a script cannot swallow it; :class:`SandboxScriptEngine` names
   the BPMN element in the message SpiffWorkflow passes on.

Known limit: a single C-level builtin call on values the budgets allow (for example
comparing deeply aliased nested lists built in a loop) cannot be interrupted in-process;
the per-value caps keep such calls short in practice.

The modules, each importing only those above it:

* :mod:`.errors` — :class:`SandboxError` and the internal stop of a run.
* :mod:`.budget` — the limits (:data:`LIMITS`, ``MAX_*``, ``MEMORY_HEADROOM_MB``), the memory
  ceiling, and the per-thread run that counts steps, time, depth and the size of built values.
* :mod:`.policy` — what code may do: the compile-time policy, the attribute whitelist,
  :data:`BUILTINS`, :data:`HELPERS` and the names refused on purpose.
* :mod:`.guards` — the hooks the compiled code calls (guarded attribute and item access,
  iteration, arithmetic, writes, function calls), enforcing the policy and the budget.
* :mod:`.runner` — compiling (cached) and running one condition or script, and turning every
  refusal or exhausted budget into a logged :class:`SandboxError`; :func:`evaluate`.
* :mod:`.spiff` — the SpiffWorkflow integration: :class:`SandboxEnvironment` and
  :class:`SandboxScriptEngine`.

Tune the scalar limits on :mod:`.budget` itself (``monkeypatch.setattr(sandbox.budget, …)``):
the runs read them there, not from this package.
"""

from __future__ import annotations

from .budget import _CEILING as _CEILING  # the memory ceiling, replaced by tests
from .budget import LIMITS, Limits
from .errors import SandboxError
from .guards import _HOOKS as _HOOKS  # the hooks, called directly by tests
from .policy import BUILTINS, HELPERS, REFUSED_MODULES, REFUSED_NAMES
from .runner import compile_expression, compile_script, evaluate
from .spiff import SandboxEnvironment, SandboxScriptEngine, script_engine

__all__ = [
    "BUILTINS",
    "HELPERS",
    "LIMITS",
    "REFUSED_MODULES",
    "REFUSED_NAMES",
    "Limits",
    "SandboxEnvironment",
    "SandboxError",
    "SandboxScriptEngine",
    "compile_expression",
    "compile_script",
    "evaluate",
    "script_engine",
]
