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
3. **Budgets** per run (:data:`LIMITS`): a number of steps and a wall-clock deadline, a
   recursion depth, and a memory budget of its own (``MAX_BUILT`` characters or elements
   built by the run, nothing process-wide). The steps and the deadline are checked between
   operations, so every single operation that runs in C is bounded *before* it runs:
   integers (operands, products, powers, shifts, ``int(text, base)``, rounding digits),
   the size of what an operator, method or builtin builds (repetition, case mapping,
   ``strftime``, padding, joins, ``str()``), and comparisons, hashes and renderings of
   containers by their size expanded and their nesting (memoised on identity, so aliased
   lists cannot blow the measurement up). What a script leaves in the task data is
   measured the same way before the engine can save it.
4. **Clear errors**: a refusal or an exhausted budget stops the run with a
   :class:`SandboxError` (a :class:`~engine.errors.ScriptError`) and a warning on the
   ``deptflow.sandbox`` logger. Inside the sandbox the stop is not an ``Exception``, so
   ``try``/``except`` in a script cannot swallow it; :class:`SandboxScriptEngine` names
   the BPMN element in the message SpiffWorkflow passes on.

The longest single operation the bounds allow is sorting a million elements (a few tenths of
a second); everything else stays in milliseconds, so a stopped run never holds the interpreter
long enough to delay other requests noticeably.

The modules, each importing only those above it:

* :mod:`.errors` — :class:`SandboxError` and the internal stop of a run.
* :mod:`.budget` — the limits (:data:`LIMITS`, ``MAX_*``), the per-thread run that counts steps,
  time, depth and built values, and the measure of a value expanded (:func:`.budget._expanded`).
* :mod:`.policy` — what code may do: the compile-time policy, the attribute whitelist,
  :data:`BUILTINS`, :data:`HELPERS` and the names refused on purpose.
* :mod:`.guards` — the hooks the compiled code calls (guarded attribute and item access,
  iteration, arithmetic, writes, function calls), enforcing the policy and the budget.
* :mod:`.runner` — compiling (cached) and running one condition or script, and turning every
  refusal or exhausted budget into a logged :class:`SandboxError`; :func:`evaluate`; and
  :func:`run_time_refusals`, what deploy warns about (calls the sandbox would refuse).
* :mod:`.spiff` — the SpiffWorkflow integration: :class:`SandboxEnvironment` and
  :class:`SandboxScriptEngine`.

Tune the scalar limits on :mod:`.budget` itself (``monkeypatch.setattr(sandbox.budget, …)``):
the runs read them there, not from this package.
"""

from __future__ import annotations

from .budget import LIMITS, Limits
from .errors import SandboxError
from .policy import BUILTINS, HELPERS, REFUSED_MODULES, REFUSED_NAMES
from .runner import compile_expression, compile_script, evaluate, run_time_refusals
from .spiff import SandboxEnvironment, SandboxScriptEngine

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
    "run_time_refusals",
]
