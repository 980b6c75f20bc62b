"""Reading JSON bodies: a missing or malformed required field is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.errors import ApiError


async def json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
          default: Any = None, path: str = "") -> Any:
    where = f"{path}{name}"
    if name not in body or body[name] is None:
        if required:
            raise ApiError(400, "missing_field", f"'{where}' is required", field=where)
        return default
    value = body[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ApiError(400, "invalid_field", f"'{where}' must be a number", field=where)
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        names = {"str": "a string", "int": "a whole number", "list": "a list",
                 "bool": "true or false", "dict": "an object", "float": "a number"}
        raise ApiError(400, "invalid_field",
                       f"'{where}' must be {names.get(expected, expected)}", field=where)
    if isinstance(value, str) and required and not value.strip():
        raise ApiError(400, "invalid_field", f"'{where}' must not be empty", field=where)
    return value
