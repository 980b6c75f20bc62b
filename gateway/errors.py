"""API errors as `{"error": {"code", "message"}}` with a 4xx status (INTERFACES.md)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def error_response(status: int, code: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}}, status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, **error.extra)
    except web.HTTPException as error:
        if error.status >= 400 and not request.path.startswith("/ack/"):
            return error_response(error.status, error.reason.lower().replace(" ", "_"),
                                  error.reason)
        raise
    except Exception:
        reference = secrets.token_hex(4)
        log.exception("unhandled error on %s %s (ref: %s)", request.method, request.path, reference)
        return error_response(500, "internal", f"something went wrong (ref: {reference})")
