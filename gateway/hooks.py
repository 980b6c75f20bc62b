"""Inbound integration hooks, signed the Standard Webhooks way.

`webhook-id`, `webhook-timestamp` and `webhook-signature` (HMAC-SHA256, 5-minute
tolerance) are checked by the `standardwebhooks` library with the source's `whsec_…`
secret. A hook is validated whole before anything is written, applied in one
transaction together with its `webhook-id` row, and a repeated id is acknowledged with
the first answer and not applied again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from gateway.errors import ApiError
from gateway.keys import CLOCK, DISPATCHER, METRICS, SERVICES, SETTINGS
from gateway.validate import parse_json, read_limited
from handlers import grades, library
from handlers.context import ServiceContext
from handlers.message import InvalidInput
from store.models import HookDelivery

Parse = Callable[[dict[str, Any]], Any]
Apply = Callable[[ServiceContext, Any], Awaitable[dict[str, Any]]]


def verify(secret: str, raw: bytes, headers: dict[str, str]) -> None:
    try:
        Webhook(secret).verify(raw, headers, json_parse=False)
    except (WebhookVerificationError, ValueError, UnicodeDecodeError) as error:
        raise ApiError(401, "bad_signature", f"signature check failed: {error}") from None


def signed_hook(source: str, secret_of: Callable[[Any], str | None], parse: Parse,
                apply: Apply) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        app = request.app
        metrics = app[METRICS]
        secret = secret_of(app[SETTINGS])
        if not secret:
            raise ApiError(503, "not_configured", f"the {source} hook has no secret configured")
        raw = await read_limited(request, app[SETTINGS].hook_max_bytes)
        try:
            verify(secret, raw, dict(request.headers))
        except ApiError:
            metrics.hooks_total.labels(source, "unauthorized").inc()
            raise
        hook_id = f"{source}:{request.headers['webhook-id']}"
        seen = await HookDelivery.get_or_none(webhook_id=hook_id)
        if seen is not None:
            metrics.hooks_total.labels(source, "replayed").inc()
            return web.json_response({**seen.response, "replayed": True})
        body = parse_json(raw)
        try:
            batch = parse(body)
        except InvalidInput as error:
            metrics.hooks_total.labels(source, "invalid").inc()
            raise ApiError(400, "invalid_field", error.message, field=error.field) from None
        services = app[SERVICES]
        try:
            async with in_transaction():
                delivery = await HookDelivery.create(webhook_id=hook_id, source=source,
                                                     received_at=app[CLOCK].now())
                result = await apply(services, batch)
                delivery.response = result
                await delivery.save(update_fields=["response"])
        except IntegrityError:  # the same id arrived twice at once: the other one applied it
            seen = await HookDelivery.get(webhook_id=hook_id)
            return web.json_response({**seen.response, "replayed": True})
        metrics.hooks_total.labels(source, "applied").inc()
        app[DISPATCHER].notify()
        return web.json_response(result)

    return handler


def setup(app: web.Application) -> None:
    app.router.add_post("/hooks/register/grades", signed_hook(
        "register", lambda s: s.hook_secret_register, grades.parse_batch, grades.apply_batch))
    app.router.add_post("/hooks/library/loans", signed_hook(
        "library", lambda s: s.hook_secret_library, library.parse_batch, library.apply_batch))
