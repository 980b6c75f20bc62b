"""API errors as `{"error": {"code", "message"}}` with a 4xx status (INTERFACES.md)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from handlers.message import InvalidInput
from store.batcher import Overloaded
from store.errors import is_input_fault, is_transient

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *,
                 headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers


#: seconds a client is asked to wait after a 503 or 429 without a better estimate
RETRY_AFTER = 5


def error_response(status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: object) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, **extra}},
                             status=status, headers=headers)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, headers=error.headers,
                              **error.extra)
    except web.HTTPException as error:
        if error.status >= 400 and not request.path.startswith(("/ack/", "/sprawy/", "/panel")):
            return error_response(error.status, error.reason.lower().replace(" ", "_"),
                                  error.reason)
        raise
    except InvalidInput as error:
        return error_response(400, "invalid_field", error.message, field=error.field)
    except Overloaded:
        return error_response(503, "overloaded", "too many requests are waiting; try again",
                              headers={"Retry-After": str(RETRY_AFTER)})
    except Exception as error:
        if is_transient(error):
            log.warning("store unavailable on %s %s: %s", request.method, request.path, error)
            return error_response(503, "unavailable", "the service is briefly unavailable; "
                                  "try again", headers={"Retry-After": str(RETRY_AFTER)})
        if is_input_fault(error):
            # a backstop: every field is checked against its column before it is written,
            # so this names a check we missed; the client still learns it was its input
            log.error("input reached the store unchecked on %s %s", request.method, request.path,
                      exc_info=True)
            return error_response(400, "invalid_field", "a value is too long or malformed")
        reference = secrets.token_hex(4)
        log.exception("unhandled error on %s %s (ref: %s)", request.method, request.path, reference)
        return error_response(500, "internal", f"something went wrong (ref: {reference})")
