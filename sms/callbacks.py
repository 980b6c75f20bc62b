"""SMSAPI.pl's callbacks: delivery reports and incoming SMS (issue #19).

Mounted by gateway/app.py under `/hooks/sms` (the channel's `callbacks`), so SMSAPI is
given, in its customer panel, these two addresses:

    {EMIL_PUBLIC_URL}/hooks/sms/smsapi/{EMIL_SMS_CALLBACK_SECRET}/reports   (GET or POST)
    {EMIL_PUBLIC_URL}/hooks/sms/smsapi/{EMIL_SMS_CALLBACK_SECRET}/incoming  (POST)

What this module takes from SMSAPI's documentation ("callback raportów doręczenia" and
"odbiór SMS"), as remembered — the documentation could not be reached from the machine
this was written on; check before going live, and tests/doubles/smsapi.py speaks it:

- A delivery report carries `MsgId` (SMSAPI's id), `status` (a number: 402 EXPIRED,
  403 SENT, 404 DELIVERED, 405 UNDELIVERED, 406 FAILED, 407 REJECTED, 408 UNKNOWN,
  409 QUEUE, 410 ACCEPTED), `idx` (our own id, sent with the message: the outbox row's
  id), `donedate`, `to`, `from`, `points` and `username`; several reports may come in one
  call as comma-separated lists, position by position. SMSAPI calls by GET unless told
  to POST, so both are taken.
- An incoming SMS is a POSTed form: `sms_to`, `sms_from` (the sender, international
  without "+"), `sms_text`, `sms_date` (Unix time), `username`, `MsgId`.
- Both want the body `OK` in answer, and call again until they get it.
- SMSAPI signs nothing. Its callbacks are authenticated by a secret in the address we
  give it (compared in constant time; unset: 503, wrong: 404, as if there were nothing
  there) and, with `EMIL_SMS_CALLBACK_NETWORKS`, by the networks SMSAPI publishes as the
  callbacks' sources (403 from anywhere else, before the secret is looked at). A client
  that keeps guessing the secret is answered 429 after `GUESSES` wrong tries within the
  hour, before its guess is looked at (else the answer would still tell a right guess).
  The secret's 16 characters or more make guessing hopeless anyway; the slowdown keeps
  the noise down. Its cost: a client over the limit is refused even with the right
  secret, so behind a proxy that `EMIL_TRUSTED_PROXIES` does not name (every client one
  address) a guesser could hold the provider off for an hour — SMSAPI calls again, and
  `EMIL_SMS_CALLBACK_NETWORKS` closes that door, as it is checked first.

Limits: a body of at most `MAX_BYTES` (or the hooks' limit, if smaller), at most
`MAX_FIELDS` fields, and one length check for every value — a report's lists item by
item — at `FIELD_MAX` characters (a ten-part SMS is 1,530). An incoming SMS is stored
(RawInbound, deduplicated by `MsgId`) and committed before `OK`; the inbox reads it
(sms/inbound.py) and the router limits how often one number is answered, as it does for a
chat. Reports are applied at once, in one transaction: DELIVERED makes the outbox row
`delivered`; UNDELIVERED, EXPIRED, FAILED and REJECTED make it `bounced` and queue the
person's next channel; the other states say nothing new. A report about a row that is not
one of this channel's, or is not `sent` (again, or already bounced), changes nothing.
`delivered_at` is when the report arrived: `donedate`'s form is not known well enough to
be trusted.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import parse_qsl

from aiohttp import web
from tortoise.transactions import in_transaction

from handlers.channels import HookEnv
from handlers.message import InvalidInput
from handlers.netaddr import Network, is_trusted, limit_key, parse_address
from handlers.ratelimit import Limit, RateLimiter
from store.models import Outbox, RawInbound
from store.outbox import mark_bounced, mark_delivered

log = logging.getLogger(__name__)

PROVIDER = "smsapi"
MAX_BYTES = 256 * 1024
MAX_FIELDS = 64
FIELD_MAX = 2000
#: reports in one call (a broadcast's reports come in batches)
MAX_REPORTS = 1000
#: wrong secrets a client may try in an hour (burst) before it is answered 429
GUESSES = 10

DELIVERED = frozenset({404})
BOUNCED = frozenset({402, 405, 406, 407})
#: SMSAPI's names of its states, for a report that gives the name rather than the number
STATES = {"EXPIRED": 402, "SENT": 403, "DELIVERED": 404, "UNDELIVERED": 405, "FAILED": 406,
          "REJECTED": 407, "UNKNOWN": 408, "QUEUE": 409, "ACCEPTED": 410}
NAMES = {code: name for name, code in STATES.items()}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: the answer SMSAPI waits for; anything else and it calls again
OK = "OK"


def refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None
            ) -> web.Response:
    """The gateway's error shape (`{"error": {"code", "message"}}`) without importing it."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def routes(secret: str | None, networks: tuple[Network, ...], channel: str = "sms"
           ) -> Callable[[HookEnv], list[web.RouteDef]]:
    """The channel's `callbacks`: SMSAPI's report and incoming-SMS routes."""

    def build(env: HookEnv) -> list[web.RouteDef]:
        guessing = RateLimiter(Limit(GUESSES, GUESSES), time.monotonic)
        limit = min(MAX_BYTES, env.max_bytes)

        def guarded(handler: Callable[[web.Request, dict[str, str]],
                                      Awaitable[web.Response | None]], *,
                    lists: bool = False) -> Handler:
            async def checked(request: web.Request) -> web.StreamResponse:
                refused = authorise(request, env, secret, networks, guessing)
                if refused is not None:
                    return refused
                answer = await handler(request, await read_fields(request, limit, lists=lists))
                return answer or web.Response(text=OK, content_type="text/plain")
            checked.__doc__ = handler.__doc__
            return checked

        async def reports(request: web.Request, fields: dict[str, str]) -> web.Response | None:
            """SMSAPI delivery reports (comma-separated lists; GET or POST); answers OK, or
            503 while a report's message is still being marked sent by us (the provider
            calls again; the reports already applied change nothing the second time)."""
            now = env.services().clock.now()
            queued, early = await apply_reports(parse_reports(fields), channel, now)
            if queued:
                env.wake_outbox()
            if early:
                return refusal(503, "not_yet", "a message reported is still being sent; "
                               "call again", {"Retry-After": "5"})
            return None

        async def incoming(request: web.Request, fields: dict[str, str]) -> None:
            """An incoming SMS from SMSAPI, stored before it answers OK."""
            await store_incoming(fields, channel, env.services().clock.now())
            env.wake_inbox()

        path = f"/{PROVIDER}/{{secret}}"
        return [web.get(f"{path}/reports", guarded(reports, lists=True), allow_head=False),
                web.post(f"{path}/reports", guarded(reports, lists=True)),
                web.post(f"{path}/incoming", guarded(incoming))]

    return build


def authorise(request: web.Request, env: HookEnv, secret: str | None,
              networks: tuple[Network, ...], guessing: RateLimiter) -> web.Response | None:
    """None if the request may go on, else the answer that refuses it."""
    if not secret:
        return refusal(503, "not_configured", "the SMS callbacks have no secret configured")
    client = env.client_address(request)
    if networks:  # first: a stranger's guesses then never slow the provider down
        address = parse_address(client)
        if address is None or not is_trusted(address, networks):
            log.warning("SMS callback from %s, outside EMIL_SMS_CALLBACK_NETWORKS", client)
            return refusal(403, "forbidden", "not from the provider's networks")
    wait = guessing.wait(limit_key(client))
    if wait > 0:  # before the guess is looked at, or the answer would still tell
        return refusal(429, "slow_down", "too many wrong addresses; try later",
                       {"Retry-After": str(int(wait))})
    given = request.match_info.get("secret", "").encode()
    if not hmac.compare_digest(given, secret.encode()):
        guessing.take(limit_key(client))
        return refusal(404, "not_found", "Not Found")
    return None


async def read_fields(request: web.Request, limit: int, *, lists: bool = False
                      ) -> dict[str, str]:
    """The form (POST body) or the query (GET), every value checked for length: whole,
    or with `lists` (reports) each item of its comma-separated list."""
    if request.method == "GET":
        pairs = list(request.query.items())
    else:
        pairs = parse_form(await read_body(request, limit))
    if len(pairs) > MAX_FIELDS:
        raise InvalidInput("form", f"more than {MAX_FIELDS} fields")
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput(name[:64], "the field is given twice")
        items = value.split(",") if lists else [value]
        if len(name) > FIELD_MAX or any(len(item) > FIELD_MAX for item in items):
            raise InvalidInput(name[:64], f"longer than {FIELD_MAX} characters")
        fields[name] = value
    return fields


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit`."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(raw: bytes) -> list[tuple[str, str]]:
    """An `application/x-www-form-urlencoded` body in UTF-8 (the only form SMSAPI posts)."""
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                         max_num_fields=MAX_FIELDS, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("form", "the body is not UTF-8") from None
    except ValueError:
        raise InvalidInput("form", f"more than {MAX_FIELDS} fields") from None


def required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise InvalidInput(name, f"'{name}' is required")
    return value


def parse_reports(fields: dict[str, str]) -> list[tuple[str, int | None]]:
    """(our idx, SMSAPI's state or None if unknown) of each report in the call."""
    statuses = required(fields, "status").split(",")
    required(fields, "MsgId")
    idxs = fields.get("idx", "").split(",")
    if len(statuses) > MAX_REPORTS:
        raise InvalidInput("status", f"more than {MAX_REPORTS} reports in one call")
    if len(idxs) != len(statuses):
        raise InvalidInput("idx", "'idx' and 'status' list different numbers of reports")
    return [(idx.strip(), state(status)) for idx, status in zip(idxs, statuses, strict=True)]


def state(text: str) -> int | None:
    """A report's state by its number or its name."""
    text = text.strip()
    if text.isdigit() and len(text) <= 4:
        return int(text)
    return STATES.get(text.upper())


async def apply_reports(reports: list[tuple[str, int | None]], channel: str, now: datetime
                        ) -> tuple[bool, int]:
    """Apply reports in one transaction: (whether a fallback was queued, how many reports
    are about a row still `sending` — our mark of the send not yet written, so the report
    could not apply and must come again)."""
    queued, early = False, 0
    async with in_transaction():
        for idx, code in reports:
            if not idx.isdigit() or len(idx) > 18 or code is None:
                continue  # not one of ours (sent from SMSAPI's panel), or a state unknown
            applied = False
            if code in DELIVERED:
                applied = await mark_delivered(int(idx), channel, now)
            elif code in BOUNCED:
                row = await Outbox.get_or_none(id=int(idx), channel=channel, status="sent")
                if row is not None:
                    applied = True
                    fallback = await mark_bounced(row, now, f"SMSAPI report: {NAMES[code]}")
                    queued = queued or fallback is not None
            else:
                continue  # SENT, QUEUE, ACCEPTED, UNKNOWN: nothing to apply
            if not applied and await Outbox.filter(id=int(idx), channel=channel,
                                                   status="sending").exists():
                early += 1
    return queued, early


async def store_incoming(fields: dict[str, str], channel: str, now: datetime) -> None:
    """Store an incoming SMS once, by SMSAPI's `MsgId` (a repeat is stored no more)."""
    msg_id = required(fields, "MsgId")
    required(fields, "sms_from")
    if len(msg_id) > 128:
        raise InvalidInput("MsgId", "longer than 128 characters")
    await RawInbound.bulk_create([RawInbound(
        channel=channel, external_id=msg_id, envelope={"provider": PROVIDER},
        payload=json.dumps(fields, ensure_ascii=False).encode(), received_at=now)],
        ignore_conflicts=True)
