"""Inbound integration hooks, signed the Standard Webhooks way.

`webhook-id`, `webhook-timestamp` and `webhook-signature` (HMAC-SHA256, 5-minute
tolerance) are checked by the `standardwebhooks` library with the source's `whsec_…`
secret. A hook is validated whole before anything is written, applied in one
transaction together with its `webhook-id` row, and a repeated id is acknowledged with
the first answer and not applied again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from tortoise.exceptions import IntegrityError

from gateway.errors import ApiError
from gateway.keys import HOOK_COMMIT, METRICS, SETTINGS
from gateway.validate import parse_json, read_limited
from handlers import (
    attendance,
    grades,
    homework,
    library,
    reading_lists,
    remarks,
    school_messages,
    topics,
)
from handlers.context import ServiceContext
from handlers.message import InvalidInput
from store.models import HookDelivery

Parse = Callable[[dict[str, Any]], Any]
#: a feed's `apply_batches`: many requests' batches, one answer each, in one transaction
Apply = Callable[[ServiceContext, list[Any]], Awaitable[list[dict[str, Any]]]]


@functools.lru_cache(maxsize=8)
def _verifier(secret: str) -> Webhook:
    """One per secret: building it decodes the secret, on every request otherwise."""
    return Webhook(secret)


def verify(secret: str, raw: bytes, headers: dict[str, str]) -> None:
    try:
        _verifier(secret).verify(raw, headers, json_parse=False)
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
        try:
            batch = parse(parse_json(raw))
        except (InvalidInput, ApiError) as error:
            seen = await HookDelivery.get_or_none(webhook_id=hook_id)
            if seen is not None:  # a repeat is answered as the first time, whatever it says
                metrics.hooks_total.labels(source, "replayed").inc()
                return web.json_response({**seen.response, "replayed": True})
            metrics.hooks_total.labels(source, "invalid").inc()
            if isinstance(error, ApiError):
                raise
            raise ApiError(400, "invalid_field", error.message, field=error.field) from None
        try:
            # group commit: concurrent hook requests share one transaction, each answered
            # after its own batch is durable; one that fails is retried alone, so each
            # request stays all or nothing (store/batcher.py). The replay check is made
            # there too, one query for the whole group.
            result = await app[HOOK_COMMIT].submit(HookWork(hook_id, source, apply, batch))
        except IntegrityError:  # the same id arrived twice at once: the other one applied it
            seen = await HookDelivery.get(webhook_id=hook_id)
            return web.json_response({**seen.response, "replayed": True})
        metrics.hooks_total.labels(source, "replayed" if result.get("replayed") else "applied"
                                   ).inc()
        return web.json_response(result)

    return handler


@dataclass
class HookWork:
    hook_id: str
    source: str
    apply: Apply
    batch: Any


async def apply_hooks(services: ServiceContext, works: list[HookWork]) -> list[dict[str, Any]]:
    """Group-commit body: apply each hook's batch and record its id with its answer, all
    in the caller's one transaction. An id seen before — stored, or earlier in this
    group — is answered with its first answer and not applied again. The ids of the
    whole group are looked up and recorded with one query each, and the batches of one
    feed are applied together (each feed's `apply_batches` reads and writes the rows of
    them all at once, still answering each request for its own batch)."""
    now = services.clock.now()
    answered: dict[str, dict[str, Any]] = dict(await HookDelivery.filter(
        webhook_id__in={w.hook_id for w in works}).values_list("webhook_id", "response"))
    replayed = {w.hook_id for w in works if w.hook_id in answered}
    first: dict[str, HookWork] = {}
    for work in works:
        if work.hook_id not in replayed:
            first.setdefault(work.hook_id, work)
    per_feed: dict[Apply, list[HookWork]] = {}
    for work in first.values():
        per_feed.setdefault(work.apply, []).append(work)
    for apply, feed_works in per_feed.items():
        for work, answer in zip(feed_works, await apply(services, [w.batch for w in feed_works]),
                                strict=True):
            answered[work.hook_id] = answer
    if first:  # a concurrent instance recording one of them first: IntegrityError, and
        await HookDelivery.bulk_create([  # the group is retried one by one
            HookDelivery(webhook_id=w.hook_id, source=w.source, response=answered[w.hook_id],
                         received_at=now) for w in first.values()])
    results = []
    for work in works:
        applied_here = first.get(work.hook_id) is work  # not a replay, not a repeat
        results.append(answered[work.hook_id] if applied_here
                       else {**answered[work.hook_id], "replayed": True})
    return results


def _register(settings: Any) -> str | None:
    return settings.hook_secret_register


def _library(settings: Any) -> str | None:
    return settings.hook_secret_library


@dataclass(frozen=True)
class Hook:
    """A signed feed: where it is posted, whose secret signs it, the handler module that
    parses (`parse_batch`) and applies (`apply_batches`) it, the body's list (also the
    `emilanowek import` kind), and its title in the OpenAPI document."""

    path: str
    source: str
    secret_of: Callable[[Any], str | None]
    module: Any
    feed: str
    title: str


#: every signed hook — adding a register feed is one line here; the routes, the OpenAPI
#: document and the CSV import kinds are read from it
HOOKS: tuple[Hook, ...] = (
    Hook("/hooks/register/grades", "register", _register, grades, "grades",
         "Grades from the school register"),
    Hook("/hooks/register/attendance", "register", _register, attendance, "attendance",
         "Attendance from the school register"),
    Hook("/hooks/register/remarks", "register", _register, remarks, "remarks",
         "Remarks from the school register"),
    Hook("/hooks/register/homework", "register", _register, homework, "homework",
         "Homework and tests from the school register"),
    Hook("/hooks/register/messages", "register", _register, school_messages, "messages",
         "Messages from the school to guardians"),
    Hook("/hooks/register/topics", "register", _register, topics, "topics",
         "Lesson topics from the school register"),
    Hook("/hooks/library/loans", "library", _library, library, "loans",
         "Loans from the library system"),
    Hook("/hooks/library/lists", "library", _library, reading_lists, "lists",
         "Reading lists from the library system, updated by id"),
)


def setup(app: web.Application) -> None:
    for hook in HOOKS:
        app.router.add_post(hook.path, signed_hook(hook.source, hook.secret_of,
                                                   hook.module.parse_batch,
                                                   hook.module.apply_batches))
