"""Reading request bodies: size, nesting and every field checked before anything is done.

A body over its route's limit is a 413, JSON nested deeper than `MAX_JSON_DEPTH` or not
JSON at all a 400, and a body its model (gateway/schemas.py) refuses a 400 naming the
field: `missing_field`, `too_long` or `invalid_field` (:func:`read_body`). A
form aiohttp cannot read is a 400 page. Every string of a JSON body or a form is cleaned
of control and bidi characters (handlers/text.py). A body that does not arrive in time is
cut off with 408 (:func:`body_deadline`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_args

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gateway.errors import ApiError
from gateway.keys import SETTINGS
from handlers.limits import MAX_JSON_DEPTH, json_depth_ok
from handlers.text import clean, clean_json, json_needs_cleaning

log = logging.getLogger(__name__)
B = TypeVar("B", bound=BaseModel)

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
    if json_needs_cleaning(raw):
        clean_json(body)
    return body


async def json_body(request: web.Request, limit: int = ANONYMOUS_MAX_BYTES) -> dict[str, Any]:
    return parse_json(await read_limited(request, limit))


def read_body(body: dict[str, Any], model: type[B]) -> B:
    """`body` as its model (gateway/schemas.py), or a 400 naming the first field at fault
    (the models list their fields in the order a person reads them)."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise invalid(model, error.errors()) from None


async def json_model(request: web.Request, model: type[B],
                     limit: int = ANONYMOUS_MAX_BYTES) -> B:
    return read_body(await json_body(request, limit), model)


#: the words for a type pydantic names in a `*_type` error
_KINDS = {"string": "a string", "int": "a whole number", "bool": "true or false",
          "list": "a list", "dict": "an object", "model": "an object", "float": "a number"}


def invalid(model: type[BaseModel], errors: list[ErrorDetails]) -> ApiError:
    """pydantic's first error as the API's 400: `missing_field`, `too_long` or
    `invalid_field`, with a message naming the field as the caller wrote it."""
    first = errors[0]
    path = field_path(model, first["loc"])
    where = ".".join(path)
    rest = first["loc"][len(path):]
    who = f"an item of '{where}'" if rest and isinstance(rest[0], int) else f"'{where}'"
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind == "missing":
        return ApiError(400, "missing_field", f"'{where}' is required", field=where)
    if kind in ("string_too_long", "too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return ApiError(400, "too_long", f"{who} is longer than {ctx['max_length']} {unit}",
                        field=where)
    if rest and isinstance(rest[0], str):  # a union's branches (`id`: a number or a text)
        branches = [e for e in errors if e["loc"][:len(path)] == first["loc"][:len(path)]]
        fitting = [e for e in branches if not e["type"].endswith("_type")]
        if fitting and fitting[0] is not first:  # the branch of the value's own type
            return invalid(model, fitting)
        kinds = [_KINDS[e["type"][:-5]] for e in branches if e["type"][:-5] in _KINDS]
        if not fitting and len(kinds) > 1:
            return ApiError(400, "invalid_field", f"{who} must be {' or '.join(kinds)}",
                            field=where)
    return ApiError(400, "invalid_field", f"{who} {_complaint(kind, ctx, first['msg'])}",
                    field=where)


def _complaint(kind: str, ctx: dict[str, Any], said: str) -> str:
    """What is wrong with a value, in the API's words (pydantic's own as the last resort)."""
    if kind.endswith("_type") and kind[:-5] in _KINDS:
        return f"must be {_KINDS[kind[:-5]]}"
    if kind in ("string_too_short", "string_pattern_mismatch"):  # the one pattern: NOT_BLANK
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx['min_length']} item(s)"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
              "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx[key]}"
    return f"is not valid: {said[:200]}"


def field_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field at fault as the caller wrote it (`attachment`, `data`): the names of
    `loc` that are fields of the models on the way down. A list's item is its list
    (`guardians`, as the API always named it); a union's branch (`int`, `str`) is not a
    field."""
    names: list[str] = []
    current: Any = model
    for part in loc:
        fields = {(info.alias or name): info for name, info in current.model_fields.items()
                  } if _is_model(current) else {}
        if not isinstance(part, str) or part not in fields:
            break
        names.append(part)
        current = next((t for t in (fields[part].annotation, *get_args(fields[part].annotation))
                        if _is_model(t)), None)
    return names


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


class MalformedForm(Exception):
    """A form body aiohttp cannot read (a multipart without its boundary, broken
    encoding): the page answers 400 in its own way."""


async def read_form(request: web.Request) -> dict[str, Any]:
    """The one way pages read a posted form: what the body cannot be parsed into is a
    400, never a 500. aiohttp signals an unreadable form with many classes — ValueError
    (multipart without a boundary, found by schemathesis), `InvalidHeader` (a part header
    with a NUL or without a colon), RuntimeError (`Content-Transfer-Encoding:
    x-uuencode`), LookupError (an unknown charset), a warning turned error — so every
    exception is one, except those that are not about the form: an HTTP answer of
    aiohttp's own (413 over `client_max_size`) and a lost connection (OSError, which
    includes a timeout). Text values come back cleaned (handlers/text.py); files as
    aiohttp's `FileField`, cleaned when they become an `Attachment`."""
    try:
        form = await request.post()
    except (web.HTTPException, OSError):
        raise
    except Exception as error:
        log.info("unreadable form on %s %s: %s: %.200s", request.method, request.path,
                 type(error).__name__, error)
        raise MalformedForm(f"{type(error).__name__}: {error}"[:200]) from None
    return {key: clean(value) if isinstance(value, str) else value
            for key, value in form.items()}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 26\r\n\r\n"
              b"the request body was late\n")


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Cut off a request whose body does not arrive in time (issue #18, fault 13: 300
    connections trickling a byte every 30 s stayed open for five minutes).

    aiohttp 3.14 has no body read timeout: its keep-alive timer (`keepalive_timeout`,
    75 s under `web.run_app`) closes a connection whose request headers never complete,
    but once they are in, a handler waits for the body as long as the client likes. The
    rule is Apache mod_reqtimeout's `body=20,MinRate=500`: the body must be complete
    within `http_body_seconds` of the headers, and every `http_body_min_rate` bytes
    received buy one more second — a slow but honest upload goes on, a trickle does not.
    A late body is answered 408 and the connection closed; whatever the handler was
    waiting for fails as a lost connection, which ends here (inside `errors_middleware`,
    so that it is not logged as our error). One timer per request with a body, and only
    while the handler runs; a body that is all in already costs nothing."""
    payload = request.content
    if not request.body_exists or payload.is_eof():
        return await handler(request)
    settings = request.config_dict[SETTINGS]
    loop = asyncio.get_running_loop()
    started = loop.time()
    timer: asyncio.TimerHandle | None = None
    cut = False

    def check() -> None:
        nonlocal timer, cut
        if payload.is_eof():
            return
        allowed = (started + settings.http_body_seconds
                   + payload.total_bytes / max(1, settings.http_body_min_rate))
        if loop.time() < allowed:
            timer = loop.call_at(allowed, check)
            return
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        log.info("request body too slow on %s %s: %d bytes in %.0f s, cut off",
                 request.method, request.path, payload.total_bytes, loop.time() - started)
        if request.writer.output_size == 0:  # nothing of an answer sent yet
            transport.write(_TIMED_OUT)
        cut = True
        transport.close()

    timer = loop.call_at(started + settings.http_body_seconds, check)
    try:
        return await handler(request)
    except Exception:
        if cut:  # the handler's read failed because the body was cut off: answered above
            return web.Response(status=408)
        raise
    finally:
        timer.cancel()
