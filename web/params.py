"""Numbers and dates from URLs: out of range is a 404 or a 400 with a message, never a database overflow."""

from __future__ import annotations

from flask import abort, request
from werkzeug.routing import IntegerConverter

#: the largest id a route accepts: every id column is an INTEGER, which ends here in PostgreSQL
#: (a larger number there is "integer out of range"; beyond 2^63 SQLite overflows too)
MAX_ID = 2**31 - 1
#: the largest page or version number (a page's row offset must still fit in a BIGINT)
MAX_PAGE = 2**31 - 1


class BoundedIntConverter(IntegerConverter):
    """``<int:…>`` that does not match beyond ``MAX_ID``: the route answers 404, not a database error."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's parameter name
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def int_arg(name: str, default: int | None = None, *, minimum: int = 0, maximum: int = MAX_ID) -> int | None:
    """The query-string (or form) value ``name`` as a whole number, ``default`` when it is absent or empty.

    Anything else outside ``minimum``–``maximum`` aborts with 400 and says what was expected.
    """
    text = (request.values.get(name) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not minimum <= int(text) <= maximum:
        abort(400, f"“{name}” must be a whole number from {minimum} to {maximum}.")
    return int(text)


def page_arg(name: str = "page") -> int:
    """A page number: 1 when absent or not a positive number (a mistyped link shows the first page);
    beyond ``MAX_PAGE`` aborts with 400."""
    text = (request.args.get(name) or "").strip()
    if not (text.isascii() and text.isdigit()) or not text.strip("0"):
        return 1
    return int_arg(name, 1, minimum=1, maximum=MAX_PAGE)
