"""Reading request bodies: size, nesting and every field checked before anything is done.

A body over its route's limit is a 413, JSON nested deeper than `MAX_JSON_DEPTH` or not
JSON at all a 400, and a missing, malformed or too long field a 400 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from handlers.limits import MAX_JSON_DEPTH, json_depth_ok

#: anonymous JSON (a case from the town's web form is a few kilobytes)
ANONYMOUS_MAX_BYTES = 64 * 1024


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The body, refusing with 413 as soon as it is known to be over `limit` bytes
    (from Content-Length before reading, or while reading a chunked body)."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        return await request.read()  # the length is known and allowed
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> dict[str, Any]:
    # fewer brackets than the limit cannot nest deeper than it (a C-speed count first)
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and not json_depth_ok(raw):
        raise ApiError(400, "too_deep", "the JSON body is nested too deeply")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


async def json_body(request: web.Request, limit: int = ANONYMOUS_MAX_BYTES) -> dict[str, Any]:
    return parse_json(await read_limited(request, limit))


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
          default: Any = None, path: str = "", max_length: int | None = None) -> Any:
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
    if max_length is not None and isinstance(value, (str, list)) and len(value) > max_length:
        raise ApiError(400, "too_long", f"'{where}' is longer than {max_length}", field=where)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        raise ApiError(400, "invalid_field", f"'{where}' is out of range", field=where)
    return value


class MalformedForm(Exception):
    """A form body aiohttp cannot read (a multipart without its boundary, broken
    encoding): the page answers 400 in its own way."""


async def read_form(request: web.Request) -> dict[str, Any]:
    """The one way pages read a posted form: what the body cannot be parsed into is a
    400, never a 500 (found by schemathesis: multipart without a boundary)."""
    try:
        return dict(await request.post())
    except (ValueError, UnicodeDecodeError, AssertionError) as error:
        raise MalformedForm(str(error)[:200]) from None
