"""Reading request bodies: size, nesting and every field checked before anything is done.

A body over its route's limit is a 413, JSON nested deeper than `MAX_JSON_DEPTH` or not
JSON at all a 400, and a missing, malformed or too long field a 400 naming the field. A
form aiohttp cannot read is a 400 page. Every string of a JSON body or a form is cleaned
of control and bidi characters (handlers/text.py). A body that does not arrive in time is
cut off with 408 (:func:`body_deadline`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.errors import ApiError
from gateway.keys import SETTINGS
from handlers.limits import MAX_JSON_DEPTH, json_depth_ok
from handlers.text import clean, clean_json, json_needs_cleaning

log = logging.getLogger(__name__)

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
