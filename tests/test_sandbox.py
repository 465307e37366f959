"""Conditions and scripts run in RestrictedPython, never in plain exec/eval."""

from __future__ import annotations

import pytest

from engine.errors import ScriptError
from engine.sandbox import SandboxEnvironment, evaluate


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("review_decision == 'approve'", {"review_decision": "approve"}, True),
        ("total_budget > gm_threshold", {"total_budget": 600000, "gm_threshold": 500000}, True),
        ("a and not b", {"a": True, "b": False}, True),
        ("max(x, 3)", {"x": 1}, 3),
        ("len(items) == 2", {"items": [1, 2]}, True),
    ],
)
def test_legitimate_expressions(expression, data, expected):
    assert evaluate(expression, data) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "().__class__.__base__.__subclasses__()",
        "__import__('os').system('true')",
        "__builtins__",
        "x.__dict__",
        "(lambda: 0).__globals__",
        "eval('1')",
        "exec('x=1')",
    ],
)
def test_dunders_and_eval_are_refused_at_compile_time(expression):
    with pytest.raises(ScriptError):
        evaluate(expression, {"x": 1})


@pytest.mark.parametrize("expression", ["open('/etc/passwd').read()", "getattr(x, 'real')", "vars(x)"])
def test_dangerous_builtins_are_absent(expression):
    with pytest.raises(NameError):
        evaluate(expression, {"x": 1})


def test_private_keys_are_not_readable():
    with pytest.raises(KeyError):
        evaluate("d['_secret']", {"d": {"_secret": 1}})


def test_scripts_write_back_plain_values_only():
    env = SandboxEnvironment()
    context = {"a": 2}
    env.execute("b = a * 21\ndef helper():\n    return 1\n", context)
    assert context == {"a": 2, "b": 42}
    with pytest.raises(ScriptError):
        env.execute("import os", {})
