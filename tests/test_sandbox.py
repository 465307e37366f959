"""Conditions and scripts run in RestrictedPython, never in plain exec/eval, within budgets.

The escape corpus is in ``test_sandbox_escapes.py``; this file covers what legitimate
conditions and scripts can do, how values come back, and the budgets themselves.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
from datetime import date

import pytest
from lxml import etree

from engine import sandbox
from engine.definitions import NS
from engine.errors import ScriptError
from engine.sandbox import SandboxEnvironment, SandboxError, compile_expression, compile_script, evaluate
from engine.sandbox.guards import _HOOKS
from workflows.catalogue import BPMN_DIR


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("review_decision == 'approve'", {"review_decision": "approve"}, True),
        ("total_budget > gm_threshold", {"total_budget": 600000, "gm_threshold": 500000}, True),
        ("a and not b", {"a": True, "b": False}, True),
        ("max(x, 3)", {"x": 1}, 3),
        ("len(items) == 2", {"items": [1, 2]}, True),
        ("amount * 1.1 > limit", {"amount": 100, "limit": 105}, True),
        ("amount ** 2 + (amount << 2) + amount % 7", {"amount": 10}, 143),
        ("'%s-%03d' % (prefix, n)", {"prefix": "INV", "n": 7}, "INV-007"),
        ("f'{total:,.2f} {code!r}'", {"total": 1234.5, "code": "x"}, "1,234.50 'x'"),
        ("any(line['qty'] > 5 for line in lines)", {"lines": [{"qty": 2}, {"qty": 9}]}, True),
        ("sorted({k: v for k, v in d.items() if v}, key=str.lower)", {"d": {"b": 1, "A": 2, "c": 0}}, ["A", "b"]),
        ("sum(x['n'] for x in rows) / len(rows)", {"rows": [{"n": 1}, {"n": 3}]}, 2.0),
        ("title.strip().lower().startswith('plan')", {"title": "  Plan 2025"}, True),
        ("', '.join(sorted(set(tags))).upper()", {"tags": ["b", "a", "b"]}, "A, B"),
        ("'-' * width + 'x'.rjust(3) + 'ab'.replace('a', 'xy')", {"width": 3}, "---  xxyb"),
        ("date.fromisoformat(due) - timedelta(days=2) < date(2025, 1, 1)", {"due": "2025-01-02"}, True),
        ("date.today() >= date(2020, 1, 1) and date.today().strftime('%Y') >= '2020'", {}, True),
        ("floor(x / 3) + ceil(x / 3) + round(2.567, 2)", {"x": 10}, 9.57),
        ("isinstance(v, (int, float)) and abs(v) == 4 and divmod(v, 3) == (-2, 2)", {"v": -4}, True),
        ("list(zip(a, reversed(a)))[0] + tuple(enumerate(a))[1]", {"a": [1, 2]}, (1, 2, 1, 2)),
        ("[n for n in range(10) if n % 3 == 0][-1] + min(map(int, '42'))", {}, 11),
        ("(total := a + b) > 2 and total", {"a": 1, "b": 2}, 3),
        ("d.get('missing', 'default')", {"d": {}}, "default"),
    ],
)
def test_legitimate_expressions(expression, data, expected):
    assert evaluate(expression, data) == expected


def _seed_conditions() -> list[str]:
    conditions = []
    for path in sorted(BPMN_DIR.glob("*.bpmn")):
        root = etree.parse(str(path)).getroot()
        conditions += [c.text.strip() for c in root.iterfind(".//bpmn:conditionExpression", NS) if c.text]
    return conditions


def test_the_seed_processes_conditions_compile_and_evaluate():
    conditions = _seed_conditions()
    assert len(conditions) >= 10
    for condition in conditions:
        compile_expression(condition)
        names = {n.id for n in ast.walk(ast.parse(condition, mode="eval")) if isinstance(n, ast.Name)}
        for value in ("approve", 1, True, 0):
            evaluate(condition, dict.fromkeys(names, value))
    assert evaluate("total_budget > gm_threshold", {"total_budget": 600001, "gm_threshold": 600000}) is True


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
    with pytest.raises(ScriptError, match="refused"):
        compile_expression(expression)
    with pytest.raises(ScriptError):
        evaluate(expression, {"x": 1})


@pytest.mark.parametrize(
    ("expression", "name"),
    [("open('/etc/passwd').read()", "open"), ("getattr(x, 'real')", "getattr"), ("vars(x)", "vars"),
     ("type(x)", "type"), ("sys.modules", "sys")],
)
def test_dangerous_builtins_are_absent_and_their_use_is_logged(expression, name, caplog):
    with pytest.raises(SandboxError, match=name) as caught:
        evaluate(expression, {"x": 1})
    assert caught.value.refused
    assert any(r.name == "deptflow.sandbox" and r.levelno == logging.WARNING and name in r.getMessage()
               for r in caplog.records)


def test_unknown_variables_stay_name_errors():
    """A typo is not an attack: it stays a NameError (SpiffWorkflow then suggests the closest name)."""
    with pytest.raises(NameError):
        evaluate("reveiw_decision == 'approve'", {"review_decision": "approve"})


def test_process_data_may_use_the_names_of_refused_builtins_and_helpers():
    assert evaluate("type == 'quality' and format == 'pdf'", {"type": "quality", "format": "pdf"})
    assert evaluate("date == '2024-01-01'", {"date": "2024-01-01"})


def test_process_data_cannot_replace_the_sandbox_hooks():
    data = {"__builtins__": {"getattr": getattr}, "_getattr_": getattr, "_mul_": lambda a, b: a * b}
    with pytest.raises(SandboxError, match="getattr"):
        evaluate("getattr(x, 'real')", {**data, "x": 1})
    with pytest.raises(SandboxError, match="repetition"):
        evaluate("'x' * 10**9", data)


def test_private_keys_are_not_readable():
    with pytest.raises(KeyError):
        evaluate("d['_secret']", {"d": {"_secret": 1}})


def test_syntax_errors_are_clear_and_not_logged_as_attacks(caplog):
    with pytest.raises(SandboxError, match="invalid condition: line 1"):
        compile_expression("decision ==")
    with pytest.raises(SandboxError, match="invalid script: line 2"):
        compile_script("x = 1\nif x\n")
    assert not [r for r in caplog.records if r.name == "deptflow.sandbox"]


def test_compiled_code_is_cached():
    assert compile_expression("a == 1") is compile_expression("a == 1")
    assert compile_script("b = 2") is compile_script("b = 2")


# --- scripts ------------------------------------------------------------------------------


def test_scripts_write_back_plain_values_only():
    env = SandboxEnvironment()
    context = {"a": 2}
    env.execute("b = a * 21\ndef helper():\n    return 1\n", context)
    assert context == {"a": 2, "b": 42}
    with pytest.raises(ScriptError):
        env.execute("import os", {})


def test_script_results_are_saved_as_json_values():
    context = {"keep": 1, "drop": 2, "items": [1]}
    source = (
        "nothing = None\nwhen = date(2024, 2, 29) + timedelta(days=1)\npair = (1, 'a')\n"
        "items.append(2)\ntotal = 0\nfor i in items:\n    total += i\ndel drop\nprint('ignored')\n"
        "nested = {'on': [date(2024, 1, 1)]}\n"
    )
    SandboxEnvironment().execute(source, context)
    assert context == {"keep": 1, "items": [1, 2], "nothing": None, "when": "2024-03-01", "pair": [1, "a"],
                       "total": 3, "i": 2, "nested": {"on": ["2024-01-01"]}}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("span = timedelta(days=1)", "“span” to a timedelta"),
        ("gen = (i for i in [1])", "“gen” to a generator"),
        ("bad = float('nan')", "“bad” to nan"),
        ("rows = [{'when': timedelta(days=1)}]", "“rows[0]['when']” to a timedelta"),
        ("keys = {1: 'a'}", "keys are not all text"),
        ("loop = []\nloop.append(loop)", "nested too deeply"),
    ],
)
def test_values_that_cannot_be_saved_are_refused_by_name(source, message):
    context = {"a": 1}
    with pytest.raises(SandboxError, match=re.escape(message)):
        SandboxEnvironment().execute(source, context)
    assert context == {"a": 1}


def test_failed_script_writes_nothing_back():
    context = {"a": 1}
    with pytest.raises(ZeroDivisionError):
        SandboxEnvironment().execute("b = 2\nc = 1 / 0\n", context)
    assert context == {"a": 1}


def test_scripts_may_raise_and_catch_ordinary_errors():
    context = {"raw": "12x"}
    SandboxEnvironment().execute(
        "try:\n    n = int(raw)\nexcept ValueError as e:\n    n = -1\n    why = str(e.args[0])[:7]\n", context)
    assert context["n"] == -1 and context["why"] == "invalid"
    with pytest.raises(ValueError, match="too big"):
        SandboxEnvironment().execute("raise ValueError('too big')", {})


# --- budgets ----------------------------------------------------------------------------


def test_step_budget(monkeypatch):
    monkeypatch.setitem(sandbox.LIMITS, "script", sandbox.Limits(steps=1000, seconds=5))
    SandboxEnvironment().execute("for i in range(990):\n    pass", {})
    with pytest.raises(SandboxError, match=r"script exceeded its step budget \(1,000 steps\) \(line 1\)"):
        SandboxEnvironment().execute("for i in range(1001):\n    pass", {})


def test_time_budget(monkeypatch):
    monkeypatch.setitem(sandbox.LIMITS, "condition", sandbox.Limits(steps=10**9, seconds=0.05))
    with pytest.raises(SandboxError, match="condition exceeded its time budget"):
        evaluate("[sorted(range(100000)) for i in range(10**6)]", {})


def test_recursion_limit_allows_moderate_depth():
    context: dict = {}
    SandboxEnvironment().execute("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\nf = fact(40)", context)
    assert context["f"] == 815915283247897734345611269596115894272000000000
    with pytest.raises(SandboxError, match="recursion limit"):
        SandboxEnvironment().execute("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\nf = fact(80)", {})


def test_value_caps_are_generous_for_real_work():
    context: dict = {}
    SandboxEnvironment().execute("line = '-' * 80\nrows = [0] * 10000\nbig = 2 ** 4000\ntext = 'ab' * 400000",
                                 context)
    assert len(context["rows"]) == 10000 and context["big"].bit_length() == 4001
    with pytest.raises(SandboxError, match="number of about"):
        evaluate("2 ** 20000", {})


def test_memory_is_accounted_per_run(monkeypatch):
    """Each run has its own memory budget: what one run built does not count against the next."""
    monkeypatch.setattr(sandbox.budget, "MAX_BUILT", 500_000)
    for _ in range(3):
        assert len(evaluate("'x' * 400000", {})) == 400000
    with pytest.raises(SandboxError, match=r"memory budget \(500,000 characters or elements built\)"):
        SandboxEnvironment().execute("a = 'x' * 400000\nb = [0] * 200000", {})


def test_concurrent_scripts_leave_the_process_limits_alone():
    resource = pytest.importorskip("resource")
    before = resource.getrlimit(resource.RLIMIT_AS)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(20):
                context = {"n": i}
                SandboxEnvironment().execute("rows = [n] * 1000\ntotal = 0\nfor r in rows:\n    total += r", context)
                assert context["total"] == i * 1000
        except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert resource.getrlimit(resource.RLIMIT_AS) == before


@pytest.mark.parametrize("hook", ["_fn_guard_", "_getiter_", "_mul_"])
def test_hooks_refuse_to_run_outside_a_run(hook):
    """Sandboxed functions and iterators cannot leave their run (results and saved values refuse
    them); if one did, its hooks would refuse to run rather than run without a budget."""
    with pytest.raises(ScriptError, match="outside"):
        _HOOKS[hook](*{"_fn_guard_": [len], "_getiter_": [[1]], "_mul_": ["x", 10**7]}[hook])


def test_sandbox_error_is_a_script_error():
    assert issubclass(SandboxError, ScriptError)
    assert SandboxError("x", refused=True, line=3).line == 3


def test_today_is_a_date():
    assert isinstance(evaluate("date.today()", {}), date)
