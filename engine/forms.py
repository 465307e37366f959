"""Forms from ``camunda:formData`` and their server-side validation.

The browser's own checks are a convenience; this module is the rule. Every completion
is validated here whatever the client sent, and errors come back per field with the
entered values kept so that the page can re-render without losing anything.

``pattern`` constraints run on RE2 (linear in the input whatever the pattern: no
catastrophic backtracking on what an employee types); a pattern RE2 cannot compile
(backreferences, lookaround, a syntax error) is a problem of the diagram, found at deploy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import re2
from lxml import etree

from .errors import InvalidForm, Problem
from .files import CheckedUpload, Upload, check

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
FIELD_TYPES = ("string", "long", "double", "boolean", "date", "enum", "file")
#: ``accept`` (``.pdf,.dwg``) and ``maxsize`` (in MB) are for ``file`` fields
CONSTRAINTS = ("required", "min", "max", "minlength", "maxlength", "readonly", "pattern", "accept", "maxsize")
TRUE_WORDS = {"true", "on", "yes", "1"}
FALSE_WORDS = {"false", "off", "no", "0"}
MAX_TEXT = 20_000
#: Longest ``pattern`` constraint, in characters.
MAX_PATTERN = 1_000


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error comes back as a Problem, not on stderr
    return options


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program of a ``pattern`` constraint; raises ``ValueError`` naming why RE2 refuses it."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"longer than {MAX_PATTERN:,} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


@dataclass
class FormField:
    id: str
    label: str
    type: str = "string"
    default: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    constraints: dict[str, str | None] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def required(self) -> bool:
        return "required" in self.constraints

    @property
    def readonly(self) -> bool:
        return "readonly" in self.constraints

    @property
    def help(self) -> str:
        return self.properties.get("help", "")

    @property
    def multiline(self) -> bool:
        return self.properties.get("multiline", "").lower() == "true"

    def number_bound(self, name: str) -> float | None:
        raw = self.constraints.get(name)
        try:
            return float(raw) if raw not in (None, "") else None
        except ValueError:
            return None

    def int_bound(self, name: str) -> int | None:
        raw = self.constraints.get(name)
        return int(raw) if raw not in (None, "") and str(raw).isdigit() else None


@dataclass
class Form:
    fields: list[FormField] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields)

    @property
    def editable_fields(self) -> list[FormField]:
        return [f for f in self.fields if not f.readonly]

    @property
    def has_files(self) -> bool:
        """A form with a ``file`` field is sent as ``multipart/form-data``."""
        return any(f.type == "file" and not f.readonly for f in self.fields)


def parse_form(element: etree._Element) -> tuple[Form, list[Problem]]:
    """Read ``camunda:formData`` below a BPMN element; return the form and its problems."""
    ns = {"camunda": CAMUNDA_NS}
    form, problems, seen = Form(), [], set()
    element_id = element.get("id")
    for node in element.iterfind("./{*}extensionElements/camunda:formData/camunda:formField", ns):
        field_id = node.get("id") or ""
        ftype = node.get("type") or "string"
        if not field_id.isidentifier() or field_id.startswith("_"):
            problems.append(Problem(f"form field id “{field_id}” must be a name (letters, digits, _)", element_id))
            continue
        if field_id in seen:
            problems.append(Problem(f"form field “{field_id}” appears twice", element_id))
            continue
        if ftype not in FIELD_TYPES:
            problems.append(
                Problem(f"form field “{field_id}” has unsupported type “{ftype}”", element_id)
            )
            continue
        seen.add(field_id)
        f = FormField(id=field_id, label=node.get("label") or field_id, type=ftype, default=node.get("defaultValue"))
        for value in node.iterfind("camunda:value", ns):
            f.options.append((value.get("id") or "", value.get("name") or value.get("id") or ""))
        for constraint in node.iterfind("camunda:validation/camunda:constraint", ns):
            name = constraint.get("name") or ""
            if name not in CONSTRAINTS:
                problems.append(
                    Problem(f"form field “{field_id}” has unknown constraint “{name}”", element_id, "warning")
                )
            f.constraints[name] = constraint.get("config")
            if name == "pattern" and f.constraints[name]:
                try:
                    compile_pattern(f.constraints[name])
                except ValueError as exc:
                    problems.append(Problem(f"form field “{field_id}” has a pattern the engine cannot use "
                                            f"(RE2, no backreferences or lookaround): {exc}", element_id))
        for prop in node.iterfind("camunda:properties/camunda:property", ns):
            f.properties[prop.get("id") or prop.get("name") or ""] = prop.get("value") or ""
        if ftype == "enum" and not f.options:
            problems.append(Problem(f"enum field “{field_id}” has no values", element_id))
        form.fields.append(f)
    return form, problems


def initial_values(form: Form, data: dict[str, Any]) -> dict[str, Any]:
    """What the form shows first: the current process value, else the field's default."""
    values = {}
    for f in form.fields:
        if f.id in data:
            values[f.id] = data[f.id]
        elif _default(f) is not None:
            values[f.id] = f.default
    return values


def validate(form: Form, submitted: dict[str, Any], data: dict[str, Any], *, strict: bool = False,
             what: str = "This task") -> dict[str, Any]:
    """Convert and check ``submitted`` against ``form``.

    :param strict: refuse values the form has no field for (a form deptflow inferred for a task whose own form
        it cannot show: what the client sends beyond it would otherwise be lost without a word)
    :param what: whose form it is, in the message refusing a value it has no field for

    :param submitted: raw values (strings from an HTML form, or JSON values)
    :param data: the process data so far (readonly fields keep their value from it)
    :returns: the typed values to merge into the process data. Empty values keep their type: an optional
        ``string`` left empty (or blank, or not sent, without a default) is ``""``, so a condition
        ``comment == ""`` holds; an empty ``long``, ``double``, ``date`` or ``enum`` is ``None`` (there is no
        empty number); an empty ``boolean`` is ``False``
        A ``file`` field's value is a :class:`~engine.files.CheckedUpload` (the caller stores it, see
        :func:`engine.attachments.store_form_files`), the reference already in ``data`` when no new file
        was sent, or ``None``
    :raises InvalidForm: with one message per failing field and the raw values kept
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in form.fields:
        if f.readonly:
            continue
        if f.type == "file":
            try:
                values[f.id] = _file(f, submitted.get(f.id), data.get(f.id))
            except ValueError as exc:
                errors[f.id] = str(exc)
            continue
        raw = submitted[f.id] if f.id in submitted else _default(f)
        try:
            value = _convert(f, raw)
            _check(f, value)
        except ValueError as exc:
            errors[f.id] = str(exc)
            continue
        values[f.id] = False if value is None and f.type == "boolean" else value
    if strict:
        known = {f.id for f in form.fields}
        takes = ", ".join(sorted(known)) or "no values"
        for key in submitted:
            if key not in known:
                errors[str(key)] = f"{what} has no field “{key}”; it takes {takes}."
    if errors:
        kept = {k: v for k, v in submitted.items() if isinstance(k, str) and not isinstance(v, Upload)}
        raise InvalidForm(errors, kept)
    return values


def _file(f: FormField, raw: Any, current: Any) -> CheckedUpload | dict[str, Any] | None:
    """A new file, checked against the field's and the configured limits; else the file the case has."""
    if isinstance(raw, Upload):
        maxsize = f.number_bound("maxsize")
        return CheckedUpload(raw, check(raw, accept=f.constraints.get("accept"), max_mb=maxsize))
    if raw not in (None, "") and raw != current:
        raise ValueError("Upload the file with the form.")
    if isinstance(current, dict) and "attachment_id" in current:
        return current
    if f.required:
        raise ValueError("This field is required.")
    return None


def _default(f: FormField) -> str | None:
    """A field the client did not send at all takes its ``defaultValue`` (not an expression)."""
    return f.default if f.default is not None and "${" not in f.default else None


def _convert(f: FormField, raw: Any) -> Any:
    if f.type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = "" if raw is None else str(raw).strip().lower()
        if text == "":
            return None
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValueError("Choose yes or no.")
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return "" if f.type == "string" else None
    if isinstance(raw, (list, dict)):
        raise ValueError("Enter a single value.")
    text = str(raw).strip()
    if f.type == "long":
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError("Enter a whole number.")
        try:
            return int(text.replace(",", "")) if not isinstance(raw, (int, float)) else int(raw)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if f.type == "double":
        try:
            number = float(text.replace(",", "")) if not isinstance(raw, (int, float)) else float(raw)
        except ValueError:
            raise ValueError("Enter a number.") from None
        if isinstance(raw, bool) or not math.isfinite(number):
            raise ValueError("Enter a number.")
        return number
    if f.type == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD.") from None
    if f.type == "enum":
        if text not in {option for option, _ in f.options}:
            raise ValueError("Choose one of the listed options.")
        return text
    if len(text) > MAX_TEXT:
        raise ValueError(f"Enter at most {MAX_TEXT:,} characters.")
    return str(raw).replace("\r\n", "\n")


def _check(f: FormField, value: Any) -> None:
    if value is None or value == "":
        if f.required:
            raise ValueError("This field is required.")
        return
    if f.type in ("long", "double"):
        low, high = f.number_bound("min"), f.number_bound("max")
        if low is not None and value < low:
            raise ValueError(f"Must be at least {_number(low)}.")
        if high is not None and value > high:
            raise ValueError(f"Must be at most {_number(high)}.")
    if f.type == "date":
        low, high = f.constraints.get("min"), f.constraints.get("max")
        if low and _is_iso_date(low) and value < low:
            raise ValueError(f"Must be on or after {low}.")
        if high and _is_iso_date(high) and value > high:
            raise ValueError(f"Must be on or before {high}.")
    if f.type == "string":
        shortest, longest = f.int_bound("minlength"), f.int_bound("maxlength")
        if shortest is not None and len(value) < shortest:
            raise ValueError(f"Enter at least {shortest:,} characters.")
        if longest is not None and len(value) > longest:
            raise ValueError(f"Enter at most {longest:,} characters.")
        pattern = f.constraints.get("pattern")
        if pattern:
            try:
                program = compile_pattern(pattern)
            except ValueError:  # published before patterns were checked at deploy
                raise ValueError("The format rule of this field is broken; ask the process owner.") from None
            if not program.fullmatch(value):
                raise ValueError("Does not have the expected format.")


def _number(x: float) -> str:
    return str(int(x)) if x.is_integer() else str(x)


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
