"""The JUEL subset (engine/juel.py): values of expressions over case data, and refusals with their messages.

Expected values follow the EL 2.2 specification's operator and coercion rules (JSR 245, 1.7-1.10, 1.18).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from engine import clock, juel

DATA = {
    "approved": True, "rejected": False, "amount": 300, "price": 12.5, "count": "7", "ratio": "2.5",
    "name": "Ann", "blank": "", "nothing": None, "yes": "TRUE", "no": "nope",
    "invoice": {"amount": 900, "category": "Travel Expenses", "lines": [10, 20, 30], "owner": None},
    "groups": "accounting,sales", "empty_list": [], "items": ["a", "b"], "zero": 0, "big": 2**62,
}

CASES = [
    # literals
    ("${true}", True), ("${false}", False), ("${null}", None), ("${42}", 42), ("${1.5}", 1.5), ("${2e3}", 2000.0),
    ("${'it\\'s'}", "it's"), ('${"double \\"quoted\\""}', 'double "quoted"'),
    ("#{7}", 7),
    # variables and properties
    ("${approved}", True), ("${name}", "Ann"), ("${invoice.amount}", 900),
    ("${invoice['category']}", "Travel Expenses"),
    ('${invoice["lines"][1]}', 20), ("${invoice.lines[5]}", None), ("${invoice.missing}", None),
    ("${invoice.owner.name}", None), ("${nothing.x}", None), ("${items[count - 6]}", "b"),
    # equality (EL 1.8.2)
    ("${amount == 300}", True), ("${amount eq 300.0}", True), ("${amount != 300}", False), ("${count == 7}", True),
    ("${name == 'Ann'}", True), ("${name ne 'Bob'}", True), ("${nothing == null}", True), ("${nothing == 0}", False),
    ("${approved == 'true'}", True), ("${yes == true}", True), ("${no == false}", True), ("${blank == null}", False),
    ("${blank == false}", True),
    # relational (EL 1.8.1)
    ("${amount > 200}", True), ("${amount gt 300}", False), ("${amount >= 300}", True), ("${price lt 13}", True),
    ("${price <= 12.5}", True), ("${count < 10}", True), ("${'abc' < 'abd'}", True), ("${name ge 'Am'}", True),
    ("${nothing > 1}", False), ("${nothing < 1}", False),
    # logic (EL 1.9, coercion to boolean 1.18.5)
    ("${approved && amount > 200}", True), ("${approved and rejected}", False), ("${rejected || approved}", True),
    ("${rejected or rejected}", False), ("${!approved}", False), ("${not rejected}", True), ("${!nothing}", True),
    ("${!blank}", True), ("${yes && true}", True), ("${no || false}", False),
    ("${rejected && missing_is_not_read}", False),
    ("${approved || missing_is_not_read}", True),
    # empty (EL 1.10)
    ("${empty nothing}", True), ("${empty blank}", True), ("${empty empty_list}", True), ("${empty items}", False),
    ("${not empty name}", True), ("${empty invoice.owner}", True),
    # arithmetic (EL 1.7)
    ("${amount + 1}", 301), ("${amount - 1000}", -700), ("${amount * 2}", 600), ("${price * 2}", 25.0),
    ("${amount / 8}", 37.5), ("${amount div 3}", 100.0), ("${amount % 7}", 6), ("${amount mod 7}", 6),
    ("${-7 % 3}", -1), ("${7.5 % 2}", 1.5), ("${count + 1}", 8), ("${ratio * 2}", 5.0), ("${nothing + 1}", 1),
    ("${-amount}", -300), ("${- -amount}", 300), ("${-count}", -7), ("${1 + 2 * 3}", 7), ("${(1 + 2) * 3}", 9),
    ("${10 - 2 - 3}", 5), ("${big - big + big}", 2**62),
    # ternary
    ("${amount > 1000 ? 'board' : 'manager'}", "manager"), ("${approved ? 1 : 2}", 1),
    ("${rejected ? 'a' : approved ? 'b' : 'c'}", "b"), ("${nothing ? 'x' : 'y'}", "y"),
    # composite text
    ("${groups}", "accounting,sales"), ("team-${name}", "team-Ann"), ("${amount}/${price}", "300/12.5"),
    ("${approved}!", "true!"), ("plain text", "plain text"), ("\\${not} an expression", "${not} an expression"),
]


@pytest.mark.parametrize(("expression", "expected"), CASES)
def test_value(expression: str, expected: object) -> None:
    value = juel.evaluate(expression, DATA)
    assert value == expected and type(value) is type(expected), (expression, value)


def test_at_least_sixty_expressions() -> None:
    assert len(CASES) >= 60


@pytest.fixture
def fixed_clock():
    clock.set_clock(lambda: datetime(2026, 1, 31, 9, 30, 15, 123))
    yield
    clock.set_clock(None)


@pytest.mark.parametrize(("expression", "expected"), [
    ("${dateTime().toDate()}", datetime(2026, 1, 31, 9, 30, 15)),
    ("${now()}", datetime(2026, 1, 31, 9, 30, 15)),
    ("${dateTime().plusWeeks(1).toDate()}", datetime(2026, 2, 7, 9, 30, 15)),
    ("${dateTime().plusDays(3).plusHours(2).toDate()}", datetime(2026, 2, 3, 11, 30, 15)),
    ("${dateTime().plusMonths(1).toDate()}", datetime(2026, 2, 28, 9, 30, 15)),  # Joda: the month's last day
    ("${dateTime().plusYears(-1).plusMinutes(30).toDate()}", datetime(2025, 1, 31, 10, 0, 15)),
    ("${dateTime().minusDays(31).minusSeconds(15).toDate()}", datetime(2025, 12, 31, 9, 30)),
    ("${now().plusDays(count).toDate()}", datetime(2026, 2, 7, 9, 30, 15)),
    ("${dateTime().plusDays(amount > 100 ? 2 : 5).toDate()}", datetime(2026, 2, 2, 9, 30, 15)),
    ("${dateTime().plusDays(1).toDate() > dateTime().toDate()}", True),
])
def test_date_helpers_read_the_engine_clock(fixed_clock, expression: str, expected: object) -> None:
    assert juel.evaluate(expression, DATA) == expected


REFUSED_AT_DEPLOY = [
    ("${myBean.approve()}", "the method call “myBean.approve(…)” is not supported"),
    ("${clarified.equals('yes')}", "the method call “clarified.equals(…)” is not supported"),
    ("${execution.getVariable('x')}", "Camunda's “execution” object is not available in deptflow"),
    ("${task.assignee}", "Camunda's “task” object is not available"),
    ("${authenticatedUserId}", "“authenticatedUserId” object is not available"),
    ("${format('x')}", "the function call “format(…)” is not supported"),
    ("${dateTime(1)}", "dateTime() takes no arguments"),
    ("${dateTime().plusDays()}", "plusDays() takes 1 argument, not 0"),
    ("${dateTime().toDate().plusDays(1)}", "the method call “dateTime().toDate(…).plusDays(…)” is not supported"),
    ("${a +}", "expected a value but found the end of the expression"),
    ("${a b}", "unexpected “b” at position 5"),
    ("${(a}", "expected “)” but found the end of the expression"),
    ("${a ? b}", "expected “:” but found the end of the expression"),
    ("${a", "“${” is never closed by “}”"),
    ("${}", "expression “${}” is empty"),
    ("${a = 1}", "unexpected character “=” at position 5"),
    ("${a instanceof b}", "“instanceof” is not supported"),
    ("${a.}", "expected a property name after “.” but found the end of the expression"),
    ("${99999999999999999999}", "is larger than a whole number can be"),
    ("${#a}", "unexpected character “#”"),
    ("${" + "(" * 60 + "1" + ")" * 60 + "}", "is nested more than 50 levels deep"),
    ("${" + "!" * 60 + "a}", "is nested more than 50 levels deep"),
    ("${" + "a" * 10_001 + "}", "expression is longer than 10,000 characters"),
    ("${" + " + ".join(["a"] * 300) + "}", "has more than 200 levels of operators"),
]


@pytest.mark.parametrize(("expression", "message"), REFUSED_AT_DEPLOY)
def test_refused_when_parsed(expression: str, message: str) -> None:
    with pytest.raises(juel.JuelError) as caught:
        juel.check(expression)
    assert message in str(caught.value)


FAILING_ON_DATA = [
    ("${unknown}", "Unknown property used in expression “${unknown}”: cannot resolve identifier “unknown”"),
    ("${approved && unknown}", "cannot resolve identifier “unknown”"),
    ("${amount / 0}", "division by zero"),
    ("${amount % zero}", "division by zero"),
    ("${name + 1}", "cannot use the text “Ann” as a number"),
    ("${'a' + 'b'}", "cannot use the text “a” as a number"),
    ("${approved + 1}", "cannot use the boolean true as a number"),
    ("${amount && approved}", "cannot use the number 300 as true or false"),
    ("${name > 3}", "cannot use the text “Ann” as a number"),
    ("${invoice > 3}", "cannot use a map as a number"),
    ("${items < 'a'}", "cannot order a list and the text “a”"),
    ("${name.length}", "“name.length”: the text “Ann” has no properties"),
    ("${items['x']}", "cannot use the text “x” as a number"),
    ("${items[approved]}", "a list index must be a whole number"),
    ("${big + big}", "outside the range of whole numbers (64-bit)"),
    ("${dateTime().plusDays(name).toDate()}", "cannot use the text “Ann” as a number"),
    ("${dateTime().plusDays(1.5).toDate()}", "plusDays() needs a whole number, not 1.5"),
    ("${dateTime().plusYears(99999).toDate()}", "moves the date out of the calendar"),
    ("${approved == 1}", "cannot compare the boolean true with the number 1"),
]


@pytest.mark.parametrize(("expression", "message"), FAILING_ON_DATA)
def test_fails_on_the_data_with_a_message(expression: str, message: str) -> None:
    juel.check(expression)  # each parses: the failure is the data's
    with pytest.raises(juel.JuelError) as caught:
        juel.evaluate(expression, DATA)
    assert message in str(caught.value)


def test_evaluation_is_never_python() -> None:
    """Python syntax inside ${…} is not JUEL: nothing of it runs."""
    for expression in ("${__import__('os')}", "${[x for x in items]}", "${lambda: 1}", "${a if b else c}"):
        with pytest.raises(juel.JuelError):
            juel.evaluate(expression, {"items": [], "a": 1, "b": 1, "c": 1, "x": 1})


def test_a_result_too_large_to_store_is_refused() -> None:
    huge = ["x" * 1000] * 1100
    with pytest.raises(juel.JuelError, match="the result is larger than"):
        juel.evaluate("${huge}", {"huge": huge})


@pytest.mark.parametrize(("expression", "expected"), [
    ("${approved}", {"approved": "boolean"}),
    ("${!approved}", {"approved": "boolean"}),
    ("${clarified == true}", {"clarified": "boolean"}),
    ("${amount > 1000 && urgent}", {"amount": "long", "urgent": "boolean"}),
    ("${price >= 2.5}", {"price": "double"}),
    ("${category == 'Travel'}", {"category": "string"}),
    ("${invoice.amount > 5}", {"invoice": "string"}),
    ("${total * 2 > limit}", {"total": "double", "limit": "string"}),
    ("team-${name}", {"name": "string"}),
])
def test_variable_types_from_use(expression: str, expected: dict[str, str]) -> None:
    assert juel.variable_types(expression) == expected


def test_is_expression() -> None:
    assert juel.is_expression("${a}") and juel.is_expression("#{a}") and juel.is_expression("x ${a}")
    assert not juel.is_expression("accounting") and not juel.is_expression(None) and not juel.is_expression("")
