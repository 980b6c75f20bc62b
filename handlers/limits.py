"""One length check for every field: a value is measured against the column it goes to.

The limit of a text field is read from the Tortoise model that stores it, so a column
and its check can never disagree (PostgreSQL refuses a longer value, SQLite silently keeps
it — the register retried a refused batch forever). Texts without a column limit
(case bodies, notes, announcement bodies) have the limits below. Too long is an
:class:`InvalidInput` naming the field, which every channel turns into its own answer
(HTTP 400, an SMTP or bot reply).
"""

from __future__ import annotations

from typing import Any, overload

from tortoise.models import Model

from handlers.message import InvalidInput

#: a resident's case text or message (about 30 pages of typed text)
MAX_TEXT = 100_000
#: an address (RFC 5321 section 4.5.3.1.3: a path is at most 256 octets with its brackets)
MAX_EMAIL = 254
#: JSON nesting accepted from outside (our own bodies nest three levels)
MAX_JSON_DEPTH = 32


def column_limit(model: type[Model], column: str) -> int | None:
    return getattr(model._meta.fields_map[column], "max_length", None)


@overload
def fit(model: type[Model], column: str, value: str, where: str) -> str: ...
@overload
def fit(model: type[Model], column: str, value: str | None, where: str) -> str | None: ...
def fit(model: type[Model], column: str, value: str | None, where: str) -> str | None:
    """`value` if it fits `model.column`, else InvalidInput naming `where`."""
    if value is None:
        return None
    limit = column_limit(model, column)
    if limit is not None and len(value) > limit:
        raise InvalidInput(where, f"'{where}' is longer than {limit} characters")
    return value


def fit_text(value: str, where: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidInput(where, f"'{where}' is longer than {limit} characters")
    return value


def json_depth_ok(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests at most `limit` deep, in one linear pass over the text
    (brackets inside strings do not count). Checked before `json.loads`, whose recursion
    a few thousand `[` turn into a RecursionError."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def check_all(model: type[Model], values: dict[str, Any], where: str = "") -> None:
    """Every text value of `values` against its column of `model`."""
    for column, value in values.items():
        if isinstance(value, str):
            fit(model, column, value, f"{where}{column}")
