"""A subset of JUEL (the Unified Expression Language of Camunda 7) for the expressions Camunda models carry.

Camunda 7 writes conditions, assignees, candidate groups, due dates and priorities as ``${…}`` (or ``#{…}``)
JUEL expressions. deptflow reads them with its own tokenizer and recursive-descent parser into an expression
tree (:class:`Node`) and evaluates that tree over the case data. Nothing is ever translated to Python source,
and neither ``eval`` nor ``exec`` is called: an expression can only read variables and compute with the
operators below.

Supported:

* ``${…}`` and ``#{…}``; text around or between them is concatenated (a *composite* expression, EL 1.2.1.1)
* variables (``amount``), properties (``invoice.amount``) and indexes (``map['key']``, ``list[0]``)
* literals: ``'text'`` and ``"text"`` (``\\'``, ``\\"``, ``\\\\`` escapes), integers, decimals (``1.5``,
  ``2e3``), ``true``, ``false``, ``null``
* ``== != < > <= >=`` and ``eq ne lt gt le ge``; ``&& || !`` and ``and or not``; ``empty``;
  ``+ - * / div % mod``, unary ``-``; the ternary ``a ? b : c``; parentheses
* due-date helpers (Joda-Time's ``DateTime`` as Camunda exposes it): ``dateTime()`` and ``now()`` (the
  engine clock, UTC) followed by any of ``plusYears plusMonths plusWeeks plusDays plusHours plusMinutes
  plusSeconds`` and the ``minus…`` counterparts, each with a whole number, and ending in ``.toDate()``
  (optional)

Semantics follow the EL 2.2 specification (JSR 245, chapter 1.7-1.10), which JUEL implements:

* ``A + B``, ``A - B``, ``A * B``: ``null`` counts as 0; text is coerced to a number (``"3" + 4`` is 7;
  EL 2.2 has no text concatenation, so ``'a' + 'b'`` is an error); a decimal on either side (or text with
  ``.``, ``e`` or ``E``) makes a decimal, else a whole number (Java ``long``: leaving its range is an error
  rather than a silent wrap-around)
* ``/`` and ``div`` always divide as decimals; ``%`` and ``mod`` keep the sign of the dividend (Java);
  dividing by zero is an error (Java would give ``Infinity``, which cannot be saved with a case)
* ``==``/``!=``: equal if identical; ``null`` equals only ``null``; a decimal or whole number on either side
  compares both as numbers, else a boolean on either side compares both as booleans (``"true"`` is true,
  any other text false), else a text on either side compares both as text (``true`` is ``"true"``, ``null``
  is ``""``), else by value
* ``<``, ``>``, ``<=``, ``>=``: ``null`` on either side is false; a number on either side compares both as
  numbers (text that is no number is an error); two texts compare lexically; dates compare in time
* ``&&``, ``||``, ``!``, ``? :`` coerce to boolean: ``null`` and ``""`` are false, text is true only when it
  is ``"true"`` (any case), anything else is an error; ``&&`` and ``||`` stop at the first decisive operand
* ``empty A`` is true for ``null``, ``""``, an empty list or map
* ``a.b`` and ``a['b']``: ``null`` when ``a`` is ``null`` or the map has no such key; a list index out of
  range is ``null``; an unknown *variable* is an error (Camunda: "Unknown property used in expression")

Refused when the diagram is deployed (:func:`check`), naming the expression: any other method or function
call (``${myBean.approve()}``, ``${clarified.equals('yes')}``), Camunda's context objects (``execution``,
``task``, ``authenticatedUserId``...), lambda, assignment and other EL 3.0 operators.

Bounds: an expression text is at most :data:`MAX_SOURCE_CHARS` characters, nests at most :data:`MAX_DEPTH`
levels (checked while parsing, so a hostile nesting cannot exhaust the stack) and its tree is at most
:data:`MAX_TREE_DEPTH` deep; evaluation visits each node at most once, never loops, and its result must be
storable with the case (the sandbox's size and nesting limits, :mod:`engine.sandbox.budget`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from . import clock
from .errors import ScriptError
from .sandbox import budget
from .sandbox.budget import MAX_LENGTH, MAX_NESTING, _expanded

#: Longest expression text, in characters (as for a sandboxed condition)
MAX_SOURCE_CHARS = budget.MAX_SOURCE["condition"]
#: Deepest nesting of parentheses, unary operators, ternaries and indexes while parsing
MAX_DEPTH = 50
#: Deepest expression tree (a chain of 200 operators; evaluation recurses once per level)
MAX_TREE_DEPTH = 200
#: Java ``long``
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
#: Camunda's own objects, which deptflow does not provide
CONTEXT_OBJECTS = ("execution", "task", "authenticatedUserId", "variableScope", "caseExecution", "externalTask",
                   "connector", "environment")
DATE_UNITS = ("Years", "Months", "Weeks", "Days", "Hours", "Minutes", "Seconds")
DATE_METHODS = frozenset([f"{sign}{unit}" for sign in ("plus", "minus") for unit in DATE_UNITS] + ["toDate"])
DATE_FUNCTIONS = ("dateTime", "now")
MAX_STEPS = 100_000  # plus/minus of one step at most this many units of years… (keeps dates representable)


class JuelError(ScriptError):
    """An expression that cannot be parsed, is refused, or fails on the case data."""



# --- the tree ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One node of the expression tree."""

    kind: str  # literal, text, var, prop, index, unary, binary, and, or, ternary, call, method, composite
    value: Any = None  # the literal, the name, the operator
    children: tuple[Node, ...] = field(default_factory=tuple)


# --- tokens -----------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_$][\w$]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[-+*/%<>!?:.\[\](),])
""", re.VERBOSE | re.DOTALL)
KEYWORDS = {"true", "false", "null", "empty", "not", "and", "or", "eq", "ne", "lt", "gt", "le", "ge", "div",
            "mod", "instanceof"}
_WORD_OPS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=", "and": "&&", "or": "||",
             "not": "!", "div": "/", "mod": "%"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, op, end
    text: str
    position: int


def _tokens(source: str, offset: int, full: str) -> list[Token]:
    tokens, position = [], 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise JuelError(f"expression {_quote(full)}: unexpected character “{source[position]}” at position "
                            f"{offset + position + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            text = match.group()
            if kind == "name" and text in _WORD_OPS:
                kind, text = "op", _WORD_OPS[text]
            tokens.append(Token(kind, text, offset + position))
        position = match.end()
    tokens.append(Token("end", "", offset + len(source)))
    return tokens


def _quote(text: str) -> str:
    return f"“{text if len(text) <= 200 else text[:197] + '...'}”"


# --- parsing --------------------------------------------------------------------------


def is_expression(text: str | None) -> bool:
    """Whether ``text`` holds a ``${…}`` or ``#{…}`` expression (else it is plain text)."""
    return bool(text) and ("${" in text or "#{" in text)


def split(text: str) -> list[tuple[bool, str, int]]:
    """``text`` as (is_expression, text, offset) parts: literal text and the bodies of ``${…}``/``#{…}``.
    A ``}`` inside a quoted string does not end the expression; ``\\${`` is literal text (EL 1.2.1.1)."""
    parts: list[tuple[bool, str, int]] = []
    literal, i = [], 0
    while i < len(text):
        if text.startswith(("\\${", "\\#{"), i):
            literal.append(text[i + 1:i + 3])
            i += 3
            continue
        if text.startswith(("${", "#{"), i):
            if literal:
                parts.append((False, "".join(literal), i))
                literal = []
            start, j, quote = i + 2, i + 2, ""
            while j < len(text):
                char = text[j]
                if quote:
                    if char == "\\":
                        j += 1
                    elif char == quote:
                        quote = ""
                elif char in "'\"":
                    quote = char
                elif char == "}":
                    break
                j += 1
            if j >= len(text):
                raise JuelError(f"expression {_quote(text)}: “{text[i:i + 2]}” is never closed by “}}”")
            parts.append((True, text[start:j], start))
            i = j + 1
            continue
        literal.append(text[i])
        i += 1
    if literal:
        parts.append((False, "".join(literal), len(text)))
    return parts


@lru_cache(maxsize=2048)
def parse(text: str) -> Node:
    """The expression tree of ``text`` (``${…}``, ``#{…}`` or a composite); raises :class:`JuelError` naming
    the expression when it cannot be parsed or uses something deptflow refuses."""
    if len(text) > MAX_SOURCE_CHARS:
        raise JuelError(f"expression is longer than {MAX_SOURCE_CHARS:,} characters")
    nodes = []
    for is_expr, part, offset in split(text):
        if not is_expr:
            nodes.append(Node("text", part))
            continue
        parser = _Parser(_tokens(part, offset, text), text)
        if parser.peek().kind == "end":
            raise JuelError(f"expression {_quote(text)} is empty")
        nodes.append(parser.expression_only())
    tree = nodes[0] if len(nodes) == 1 and nodes[0].kind != "text" else Node("composite", None, tuple(nodes))
    if _depth(tree) > MAX_TREE_DEPTH:
        raise JuelError(f"expression {_quote(text)} has more than {MAX_TREE_DEPTH} levels of operators")
    return tree


def _depth(tree: Node) -> int:
    """How deep the tree is (walked without recursion: a long chain ``a + a + …`` is as deep as it is long)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node.children)
    return deepest


class _Parser:
    """Recursive descent over the EL grammar, lowest precedence first (EL 1.17)."""

    def __init__(self, tokens: list[Token], source: str):
        self.tokens, self.at, self.source, self.depth = tokens, 0, source, 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def accept(self, *ops: str) -> Token | None:
        token = self.peek()
        if token.kind == "op" and token.text in ops:
            return self.take()
        return None

    def fail(self, message: str, token: Token | None = None) -> JuelError:
        token = token or self.peek()
        where = "" if token.kind == "end" else f" at position {token.position + 1}"
        return JuelError(f"expression {_quote(self.source)}: {message}{where}")

    def expect(self, op: str) -> None:
        if not self.accept(op):
            found = self.peek()
            raise self.fail(f"expected “{op}” but found {_describe(found)}")

    def expression_only(self) -> Node:
        node = self.expression()
        if self.peek().kind != "end":
            token = self.peek()
            if token.kind == "op" and token.text in ("=", "+=", ";", "->"):
                raise self.fail(f"“{token.text}” (EL 3.0) is not supported")
            raise self.fail(f"unexpected {_describe(token)}")
        return node

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise JuelError(f"expression {_quote(self.source)} is nested more than {MAX_DEPTH} levels deep")

    def expression(self) -> Node:
        self.nested()
        condition = self.or_()
        if self.accept("?"):
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            condition = Node("ternary", None, (condition, yes, no))
        self.depth -= 1
        return condition

    def or_(self) -> Node:
        node = self.and_()
        while self.accept("||"):
            node = Node("or", None, (node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.equality()
        while self.accept("&&"):
            node = Node("and", None, (node, self.equality()))
        return node

    def equality(self) -> Node:
        node = self.relational()
        while (token := self.accept("==", "!=")) is not None:
            node = Node("binary", token.text, (node, self.relational()))
        return node

    def relational(self) -> Node:
        node = self.additive()
        while (token := self.accept("<", ">", "<=", ">=")) is not None:
            node = Node("binary", token.text, (node, self.additive()))
        if self.peek().kind == "name" and self.peek().text == "instanceof":
            raise self.fail("“instanceof” is not supported")
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while (token := self.accept("+", "-")) is not None:
            node = Node("binary", token.text, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while (token := self.accept("*", "/", "%")) is not None:
            node = Node("binary", token.text, (node, self.unary()))
        return node

    def unary(self) -> Node:
        token = self.peek()
        if (token.kind == "op" and token.text in ("-", "!")) or (token.kind == "name" and token.text == "empty"):
            self.take()
            self.nested()
            operand = self.unary()
            self.depth -= 1
            return Node("unary", token.text, (operand,))
        return self.value()

    def value(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                name = self.take()
                if name.kind != "name":
                    raise self.fail(f"expected a property name after “.” but found {_describe(name)}", name)
                if self.peek().kind == "op" and self.peek().text == "(":
                    node = self.method(node, name)
                else:
                    node = Node("prop", name.text, (node,))
            elif self.accept("["):
                self.nested()
                index = self.expression()
                self.depth -= 1
                self.expect("]")
                node = Node("index", None, (node, index))
            else:
                return node

    def arguments(self) -> tuple[Node, ...]:
        self.expect("(")
        args: list[Node] = []
        if not self.accept(")"):
            args.append(self.expression())
            while self.accept(","):
                args.append(self.expression())
            self.expect(")")
        return tuple(args)

    def method(self, target: Node, name: Token) -> Node:
        text = _source_of(target)
        if not _is_date(target) or name.text not in DATE_METHODS:
            raise JuelError(f"expression {_quote(self.source)}: the method call “{text}.{name.text}(…)” is not "
                            "supported: deptflow evaluates expressions over the case data only (no beans, no "
                            "Java methods); the date helpers are dateTime() or now() followed by "
                            "plusDays(n), minusWeeks(n)… and toDate()")
        args = self.arguments()
        wanted = 0 if name.text == "toDate" else 1
        if len(args) != wanted:
            raise self.fail(f"{name.text}() takes {wanted} argument{'s' if wanted != 1 else ''}, not {len(args)}",
                            name)
        return Node("method", name.text, (target, *args))

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            text = token.text
            if any(c in text for c in ".eE"):
                number = float(text)
                if not math.isfinite(number):
                    raise self.fail(f"the number {text[:30]} is too large", token)
                return Node("literal", number)
            return Node("literal", _long(text, self.source))
        if token.kind == "string":
            return Node("literal", _unescape(token.text))
        if token.kind == "name":
            if token.text in ("true", "false"):
                return Node("literal", token.text == "true")
            if token.text == "null":
                return Node("literal", None)
            if token.text in KEYWORDS:
                raise self.fail(f"“{token.text}” cannot start a value", token)
            if self.peek().kind == "op" and self.peek().text == "(":
                if token.text in DATE_FUNCTIONS:
                    if self.arguments():
                        raise self.fail(f"{token.text}() takes no arguments", token)
                    return Node("call", token.text)
                raise JuelError(f"expression {_quote(self.source)}: the function call “{token.text}(…)” is not "
                                "supported: the only functions are dateTime() and now()")
            if token.text in CONTEXT_OBJECTS:
                raise JuelError(f"expression {_quote(self.source)}: Camunda's “{token.text}” object is not "
                                "available in deptflow; read the case's variables by their names")
            return Node("var", token.text)
        if token.kind == "op" and token.text == "(":
            self.nested()
            node = self.expression()
            self.depth -= 1
            self.expect(")")
            return node
        raise self.fail(f"expected a value but found {_describe(token)}", token)


def _long(text: str, source: str) -> int:
    """An integer literal: a Java ``long`` (EL 1.3: integer literals are ``Long``)."""
    value = int(text) if len(text) <= 20 else LONG_MAX + 1
    if value > LONG_MAX:
        raise JuelError(f"expression {_quote(source)}: the number {text[:30]} is larger than a whole number "
                        "can be (64-bit)")
    return value


def _describe(token: Token) -> str:
    return "the end of the expression" if token.kind == "end" else f"“{token.text}”"


def _unescape(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: m.group(1) if m.group(1) in "'\"\\" else m.group(0), body)


def _is_date(node: Node) -> bool:
    return node.kind == "call" or (node.kind == "method" and node.value != "toDate" and _is_date(node.children[0]))


def _source_of(node: Node) -> str:
    """A short rendering of a node for messages."""
    if node.kind == "var":
        return str(node.value)
    if node.kind == "prop":
        return f"{_source_of(node.children[0])}.{node.value}"
    if node.kind == "call":
        return f"{node.value}()"
    if node.kind == "method":
        return f"{_source_of(node.children[0])}.{node.value}(…)"
    if node.kind == "index":
        return f"{_source_of(node.children[0])}[…]"
    if node.kind == "literal":
        return repr(node.value)
    return "(…)"


def check(text: str) -> None:
    """Raise :class:`JuelError` when ``text`` cannot be parsed or uses something refused (deploy)."""
    parse(text)


# --- what an expression reads ---------------------------------------------------------------


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def variables(text: str) -> list[str]:
    """The case variables ``text`` reads (the roots of property paths), in order of appearance."""
    return list(dict.fromkeys(n.value for n in _walk(parse(text)) if n.kind == "var"))


def variable_types(text: str) -> dict[str, str]:
    """The variables the condition ``text`` reads, each with the form field type its use suggests: ``boolean``
    when it is used as a condition (``${approved}``, ``!approved``, ``a && b``) or compared with ``true``/``false``,
    ``long``/``double`` when compared with or computed with a number, else ``string``."""
    found: dict[str, str] = {name: "" for name in variables(text)}

    def note(node: Node, kind: str) -> None:
        if node.kind == "var" and not found.get(node.value):
            found[node.value] = kind

    root = parse(text)
    if root.kind != "composite":
        note(root, "boolean")
    for node in _walk(root):
        if node.kind in ("and", "or") or (node.kind == "unary" and node.value == "!"):
            for child in node.children:
                note(child, "boolean")
        elif node.kind == "ternary":
            note(node.children[0], "boolean")
        elif node.kind == "binary":
            left, right = node.children
            if node.value in ("+", "-", "*", "/", "%"):
                note(left, "double")
                note(right, "double")
            for one, other in ((left, right), (right, left)):
                if other.kind == "literal":
                    value = other.value
                    kind = ("boolean" if isinstance(value, bool) else "long" if isinstance(value, int)
                            else "double" if isinstance(value, float) else "string")
                    note(one, kind)
    return {name: kind or "string" for name, kind in found.items()}


# --- evaluation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateValue:
    """Joda-Time's ``DateTime`` as far as due dates use it: a moment (naive UTC) moved by calendar units."""

    moment: datetime

    def moved(self, method: str, amount: int) -> DateValue:
        sign = 1 if method.startswith("plus") else -1
        unit = method[4:] if sign == 1 else method[5:]
        if abs(amount) > MAX_STEPS:
            raise JuelError(f"{method}({amount}) moves the date too far")
        amount *= sign
        try:
            if unit in ("Years", "Months"):
                months = self.moment.month - 1 + amount * (12 if unit == "Years" else 1)
                year, month = self.moment.year + months // 12, months % 12 + 1
                day = min(self.moment.day, _days_in_month(year, month))  # Joda: the last valid day
                return DateValue(self.moment.replace(year=year, month=month, day=day))
            step = {"Weeks": timedelta(weeks=1), "Days": timedelta(days=1), "Hours": timedelta(hours=1),
                    "Minutes": timedelta(minutes=1), "Seconds": timedelta(seconds=1)}[unit]
            return DateValue(self.moment + step * amount)
        except (OverflowError, ValueError):
            raise JuelError(f"{method}({amount * sign}) moves the date out of the calendar") from None


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


class _Evaluator:
    def __init__(self, data: dict[str, Any], source: str):
        self.data, self.source = data, source

    def fail(self, message: str) -> JuelError:
        return JuelError(f"expression {_quote(self.source)}: {message}")

    def run(self, node: Node) -> Any:  # noqa: C901 - one branch per node kind reads best as one dispatch
        kind = node.kind
        if kind in ("literal", "text"):
            return node.value
        if kind == "var":
            if node.value not in self.data:
                raise JuelError(f"Unknown property used in expression {_quote(self.source)}: cannot resolve "
                                f"identifier “{node.value}”")
            return self.data[node.value]
        if kind == "prop":
            return self.member(self.run(node.children[0]), node.value, node)
        if kind == "index":
            base = self.run(node.children[0])
            return self.member(base, self.run(node.children[1]), node)
        if kind == "unary":
            return self.unary(node.value, self.run(node.children[0]))
        if kind == "and":
            return self.boolean(self.run(node.children[0])) and self.boolean(self.run(node.children[1]))
        if kind == "or":
            return self.boolean(self.run(node.children[0])) or self.boolean(self.run(node.children[1]))
        if kind == "ternary":
            condition, yes, no = node.children
            return self.run(yes) if self.boolean(self.run(condition)) else self.run(no)
        if kind == "binary":
            return self.binary(node.value, self.run(node.children[0]), self.run(node.children[1]))
        if kind == "call":
            return DateValue(clock.utcnow().replace(microsecond=0))
        if kind == "method":
            target = self.run(node.children[0])
            if not isinstance(target, DateValue):
                raise self.fail(f"{node.value}() needs a date")
            if node.value == "toDate":
                return target.moment
            amount = self.run(node.children[1])
            if isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
                raise self.fail(f"{node.value}() needs a whole number, not {describe(amount)}")
            number = self.number(amount)
            if isinstance(number, float):
                if not number.is_integer():
                    raise self.fail(f"{node.value}() needs a whole number, not {number:g}")
                number = int(number)
            return target.moved(node.value, number)
        if kind == "composite":
            text = "".join(self.text(self.run(child)) for child in node.children)
            if len(text) > MAX_LENGTH:
                raise self.fail(f"the text would have more than {MAX_LENGTH:,} characters")
            return text
        raise self.fail(f"cannot evaluate {kind}")  # pragma: no cover - the parser makes no other node

    def member(self, base: Any, key: Any, node: Node) -> Any:
        if base is None:
            return None
        if isinstance(base, dict):
            return base.get(self.text(key) if not isinstance(key, str) else key)
        if isinstance(base, (list, tuple)):
            index = self.number(key) if not isinstance(key, bool) else None
            if not isinstance(index, int):
                raise self.fail(f"a list index must be a whole number, not {describe(key)}")
            return base[index] if 0 <= index < len(base) else None
        raise self.fail(f"“{_source_of(node)}”: {describe(base)} has no properties")

    # coercions (EL 1.18)

    def boolean(self, value: Any) -> bool:
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return value.lower() == "true"
        raise self.fail(f"cannot use {describe(value)} as true or false")

    def number(self, value: Any) -> int | float:
        if value is None or value == "":
            return 0
        if isinstance(value, bool):
            raise self.fail(f"cannot use {describe(value)} as a number")
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            text = value.strip()
            try:
                if any(c in text for c in ".eE"):
                    return float(text)
                return int(text)
            except ValueError:
                raise self.fail(f"cannot use the text “{value[:50]}” as a number") from None
        raise self.fail(f"cannot use {describe(value)} as a number")

    def text(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (DateValue, datetime, date)):
            return (value.moment if isinstance(value, DateValue) else value).isoformat()
        if isinstance(value, (int, float, str)):
            return str(value)
        raise self.fail(f"cannot use {describe(value)} as text")

    def unary(self, op: str, value: Any) -> Any:
        if op == "!":
            return not self.boolean(value)
        if op == "empty":
            return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)
        number = self.number(value)
        return self.checked(-number)

    def checked(self, number: int | float) -> int | float:
        if isinstance(number, int) and not LONG_MIN <= number <= LONG_MAX:
            raise self.fail("the result is outside the range of whole numbers (64-bit)")
        if isinstance(number, float) and not math.isfinite(number):
            raise self.fail("the result is not a finite number")
        return number

    def binary(self, op: str, a: Any, b: Any) -> Any:
        if op in ("==", "!="):
            return self.equal(a, b) == (op == "==")
        if op in ("<", ">", "<=", ">="):
            return self.compare(op, a, b)
        x, y = self.number(a), self.number(b)
        if op == "/":
            if y == 0:
                raise self.fail("division by zero")
            return self.checked(x / y)
        decimal = isinstance(x, float) or isinstance(y, float)
        if op == "%":
            if y == 0:
                raise self.fail("division by zero")
            if decimal:
                return self.checked(math.fmod(x, y))
            remainder = abs(x) % abs(y)
            return remainder if x >= 0 else -remainder
        result = x + y if op == "+" else x - y if op == "-" else x * y
        return self.checked(float(result) if decimal else result)

    def equal(self, a: Any, b: Any) -> bool:
        if a is b:
            return True
        if a is None or b is None:
            return False
        if _is_number(a) or _is_number(b):
            if isinstance(a, bool) or isinstance(b, bool):
                raise self.fail(f"cannot compare {describe(a)} with {describe(b)}")
            return self.number(a) == self.number(b)
        if isinstance(a, bool) or isinstance(b, bool):
            return self.boolean(a) == self.boolean(b)
        if isinstance(a, str) or isinstance(b, str):
            return self.text(a) == self.text(b)
        return _plain(a) == _plain(b)

    def compare(self, op: str, a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        if _is_number(a) or _is_number(b):
            x, y = self.number(a), self.number(b)
        elif isinstance(a, str) and isinstance(b, str):
            x, y = a, b
        elif isinstance(a, (DateValue, datetime)) and isinstance(b, (DateValue, datetime)):
            x, y = _plain(a), _plain(b)
        else:
            raise self.fail(f"cannot order {describe(a)} and {describe(b)}")
        return {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    return value.moment if isinstance(value, DateValue) else value


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text “{value[:50]}”"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (DateValue, datetime)):
        return "a date"
    return f"a {type(value).__name__}"


def evaluate(text: str, data: dict[str, Any]) -> Any:
    """The value of ``text`` over the case ``data`` (a date helper ending without ``toDate()`` is a
    ``datetime`` too). Raises :class:`JuelError` naming the expression."""
    tree = parse(text)
    evaluator = _Evaluator(data, text)
    try:
        value = evaluator.run(tree)
    except RecursionError:  # pragma: no cover - the parser bounds the depth well below the stack
        raise evaluator.fail("too deeply nested") from None
    value = _plain(value)
    size, depth = _expanded(value)
    if size > MAX_LENGTH or depth > MAX_NESTING:
        raise evaluator.fail(f"the result is larger than {MAX_LENGTH:,} characters or elements")
    return value


def evaluate_condition(text: str, data: dict[str, Any]) -> bool:
    """A sequence flow's condition: its value coerced to true or false (EL 1.18.5)."""
    return _Evaluator(data, text).boolean(evaluate(text, data))
