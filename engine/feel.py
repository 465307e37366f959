"""The FEEL that DMN decision tables from Camunda Modeler use, read into a small test tree.

A decision table's input entries are FEEL *unary tests*: ``"Travel Expenses"``, ``< 250``,
``[250..1000]``, ``> 1000``, ``-`` (anything), comma lists (any of them) and ``not(...)``. They are
parsed here into :class:`Test` objects; the values they compare with (``250``, ``"Misc"``,
``amount * 2``) stay expressions, evaluated by the caller in deptflow's sandbox like every other
expression, never here. FEEL's ``true``, ``false`` and ``null`` become Python's names. Anything
else (FEEL functions, dates, ``for``/``some`` expressions) is refused with a message when the
decision is deployed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: comparisons a unary test may start with
_OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
_RANGE = re.compile(r"^(?P<open>[\[\]\(])\s*(?P<low>.+?)\s*\.\.\s*(?P<high>.+?)\s*(?P<close>[\[\]\)])$")
_COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_KEYWORDS = {"true": "True", "false": "False", "null": "None"}
_WORD = re.compile(r"\b(true|false|null)\b")


class FeelError(ValueError):
    """A FEEL text deptflow does not read; the message says what it is."""


@dataclass(frozen=True)
class Test:
    """One unary test: ``op`` is ``any``, ``==``, ``!=``, a comparison, ``range`` or ``not``;
    ``operands`` are Python expressions (for ``range``: low, high); ``closed`` says which ends of a
    range are included; ``inner`` are the tests a ``not(...)`` negates (any of them)."""

    op: str
    operands: tuple[str, ...] = ()
    closed: tuple[bool, bool] = (True, True)
    inner: tuple[Test, ...] = field(default_factory=tuple)


def expression(text: str) -> str:
    """A FEEL expression as the sandbox's Python: ``true``/``false``/``null`` outside strings translated."""
    out, quoted = [], False
    for part in re.split(r'("(?:[^"\\]|\\.)*")', text.strip()):
        out.append(part if quoted else _WORD.sub(lambda m: _KEYWORDS[m.group(1)], part))
        quoted = not quoted
    return "".join(out)


def split_top_level(text: str) -> list[str]:
    """``text`` split at commas that are outside strings, brackets and parentheses."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def unary_tests(text: str | None) -> tuple[Test, ...]:
    """Read the unary tests of an input entry; an empty entry or ``-`` matches anything.

    :raises FeelError: an empty item in a comma list, an unbalanced range
    """
    source = (text or "").strip()
    if source in ("", "-"):
        return (Test("any"),)
    negated = re.match(r"^not\s*\((?P<inner>.*)\)$", source, re.S)
    if negated:
        return (Test("not", inner=unary_tests(negated.group("inner"))),)
    tests = []
    for item in split_top_level(source):
        if not item:
            raise FeelError(f"“{source}” has an empty item in its list")
        tests.append(_one(item))
    return tuple(tests)


def _one(item: str) -> Test:
    ranged = _RANGE.match(item)
    if ranged:
        return Test("range", (expression(ranged.group("low")), expression(ranged.group("high"))),
                    (ranged.group("open") == "[", ranged.group("close") == "]"))
    for op in _OPERATORS:
        if item.startswith(op):
            operand = item[len(op):].strip()
            if not operand:
                raise FeelError(f"“{item}” compares with nothing")
            return Test({"=": "==", "!=": "!="}.get(op, op), (expression(operand),))
    return Test("==", (expression(item),))


def operand_texts(tests: tuple[Test, ...]) -> list[str]:
    """Every expression the tests evaluate (to compile them in the sandbox when the decision is deployed)."""
    found: list[str] = []
    for test in tests:
        found.extend(test.operands)
        found.extend(operand_texts(test.inner))
    return found


def matches(tests: tuple[Test, ...], value: Any, evaluate: Callable[[str], Any]) -> bool:
    """Whether ``value`` passes any of ``tests``; ``evaluate`` computes an operand (in the sandbox).

    As in FEEL, a comparison with ``null`` (``None``) or between values of different kinds is false.
    """
    return any(_passes(test, value, evaluate) for test in tests)


def _passes(test: Test, value: Any, evaluate: Callable[[str], Any]) -> bool:
    if test.op == "any":
        return True
    if test.op == "not":
        return not matches(test.inner, value, evaluate)
    operands = [evaluate(text) for text in test.operands]
    if test.op == "==":
        return value == operands[0] or (isinstance(operands[0], list) and value in operands[0])
    if test.op == "!=":
        return value != operands[0]
    try:
        if test.op == "range":
            low, high = operands
            above = low <= value if test.closed[0] else low < value
            below = value <= high if test.closed[1] else value < high
            return bool(above and below)
        return bool(_COMPARISONS[test.op](value, operands[0]))
    except TypeError:
        return False
