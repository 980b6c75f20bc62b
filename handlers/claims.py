"""Claiming an address on a channel by a one-time code sent to it (issue #19: "a phone is
linked like the other identities, by a one-time code sent to it").

A linked person names an address on a channel (`/telefon +48 500 100 200`); the channel
normalises it (handlers/channels.py `normalise`), a 6-digit code goes to that address
through the outbox, and the person types the code back where they asked (`/telefon
123456`). Only then does the address become their identity (handlers/accounts.link) —
moved from whoever held it, since reading the code is the proof of holding it. Nothing
here knows which channel it is: the route names it (handlers/router.py).

The rules, and why:
- a code lives :data:`CODE_TTL` (10 minutes: long enough to read an SMS and type six
  digits, short enough that a guess has few chances) and takes :data:`MAX_ATTEMPTS`
  wrong answers (5: a one-in-200,000 chance to guess, then the claim dies);
- one live claim per person: a new one ends the old, so only the newest code counts;
- :data:`CODES_PER_PERSON` codes a person may ask for in 24 hours (5) and
  :data:`CODES_PER_ADDRESS` codes to one address whoever asks (3): a code costs the town
  a paid SMS, and nobody may make the town text a stranger's phone over and over;
- only a keyed hash of the code is stored — HMAC-SHA256 with the store-kept key of the
  access codes (`ctx.code_key`, store/secrets.py) — not a plain hash (hashlib): a
  six-digit code has a million values, and a plain hash of one is reversed by trying
  them all in a moment. The key is what makes the `address_claim` table, a copy of it or
  a log line useless alone. It is no secret from whoever holds the whole store (the key
  is there, and so is the outbox row carrying the code to the phone for its minutes of
  life); a code is worth nothing once its claim is used, replaced, dead or expired. The
  claim's person, channel and address are hashed with the code, so one claim's hash says
  nothing about another's;
- the claims are the person's data: RODO's export lists them and the erasure deletes
  them (handlers/rodo.py); the retention job deletes them with the link codes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.expressions import F

from handlers import accounts, fanout
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from store.models import AddressClaim, Identity, OptOut, Person
from store.outbox import PRIORITY_REPLY

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
CODES_PER_PERSON = 5
CODES_PER_ADDRESS = 3
#: the window of both daily limits
DAY = timedelta(hours=24)
_CODE = re.compile(rf"^\d{{{CODE_DIGITS}}}$")

__all__ = ["CODE_TTL", "CODES_PER_ADDRESS", "CODES_PER_PERSON", "MAX_ATTEMPTS", "Claimed",
           "Confirmed", "command", "confirm", "request"]


def code_hash(key: bytes, claim: AddressClaim | tuple[int, str, str], code: str) -> str:
    """The keyed hash of a code for one claim (person, channel, address)."""
    person_id, channel, address = ((claim.person_id, claim.channel, claim.address)
                                   if isinstance(claim, AddressClaim) else claim)
    message = f"{person_id}\n{channel}\n{address}\n{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()  # 64 characters, as stored


@dataclass(frozen=True)
class Claimed:
    """What asking for a code did: `outcome` is "sent", "unavailable" (no such channel
    registered), "not_an_address" (the channel does not take it), "yours" (already the
    person's), "stopped" (the address opted out of the channel: an SMS `STOP`), or
    "too_many" (a daily limit); `address` as normalised."""

    outcome: str
    address: str = ""


async def request(ctx: ServiceContext, person: Person, channel: str, typed: str,
                  now: datetime) -> Claimed:
    """A code to `typed` on `channel`, for `person` to type back. Call inside the
    transaction of the message that asked (the outbox row is written in it)."""
    shape = ctx.channels.get(channel)
    if shape is None:
        return Claimed("unavailable")
    address = shape.normalise(typed)
    if address is None:
        return Claimed("not_an_address")
    if await Identity.filter(channel=channel, address=address, person_id=person.id).exists():
        return Claimed("yours", address)
    if await OptOut.filter(channel=channel, address=address).exists():
        return Claimed("stopped", address)  # its sender would refuse the code anyway
    # two requests of one person at once count one after the other (PostgreSQL; SQLite
    # writes one at a time anyway)
    await Person.filter(id=person.id).select_for_update().only("id").first()
    since = now - DAY
    if (await AddressClaim.filter(person_id=person.id, created_at__gt=since).count()
            >= CODES_PER_PERSON
            or await AddressClaim.filter(channel=channel, address=address,
                                         created_at__gt=since).count() >= CODES_PER_ADDRESS):
        return Claimed("too_many", address)
    await AddressClaim.filter(person_id=person.id, used_at__isnull=True,
                              expires_at__gt=now).update(expires_at=now)
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    claim = await AddressClaim.create(
        person_id=person.id, channel=channel, address=address, attempts=0, created_at=now,
        expires_at=now + CODE_TTL, code_hash=code_hash(ctx.code_key, (person.id, channel, address),
                                                       code))
    await _send_code(ctx, person, claim, code, now)
    return Claimed("sent", address)


async def _send_code(ctx: ServiceContext, person: Person, claim: AddressClaim, code: str,
                     now: datetime) -> None:
    """The code, by the one path every notice takes (handlers/fanout.py), to the claimed
    address alone: urgent (the person is waiting, quiet hours or not) and ahead of any
    broadcast."""
    recipient = fanout.Recipient(person, [(claim.channel, claim.address)], person.language)
    await fanout.fan_out(ctx, [recipient], fanout.Notice(
        kind="claim", template="phone_code", key=f"claim:{claim.id}", cause="claim",
        context={"code": code, "minutes": int(CODE_TTL.total_seconds() // 60)},
        urgent=True, priority=PRIORITY_REPLY), now)


@dataclass(frozen=True)
class Confirmed:
    """What typing a code did: `outcome` is "linked", "wrong" (with `left` attempts),
    "dead" (no attempts left), "expired", or "none" (no claim waits); `replaced`: the
    person's earlier addresses on that channel, no longer used."""

    outcome: str
    address: str = ""
    left: int = 0
    replaced: tuple[str, ...] = ()


async def confirm(ctx: ServiceContext, person: Person, channel: str, code: str,
                  now: datetime) -> Confirmed:
    """Check a typed code against the person's newest claim on `channel`; the right one
    links the address to them (and it replaces their earlier address on that channel:
    the number they proved is the one to use)."""
    claim = await AddressClaim.filter(person_id=person.id, channel=channel).order_by("-id").first()
    if claim is None or claim.used_at is not None:
        return Confirmed("none")
    if claim.attempts >= MAX_ATTEMPTS:
        return Confirmed("dead", claim.address)
    if claim.expires_at <= now:
        return Confirmed("expired", claim.address)
    # a guess is counted before it is compared, by one conditional UPDATE: guesses checked
    # at the same moment (instances taking one chat's messages in parallel) cannot each
    # find the count below the limit (review of #19)
    if not await AddressClaim.filter(id=claim.id, attempts__lt=MAX_ATTEMPTS,
                                     used_at__isnull=True).update(attempts=F("attempts") + 1):
        return Confirmed("dead", claim.address)
    if not hmac.compare_digest(claim.code_hash, code_hash(ctx.code_key, claim, code)):
        left = MAX_ATTEMPTS - (await AddressClaim.get(id=claim.id)).attempts
        return Confirmed("wrong" if left > 0 else "dead", claim.address, left)
    # single use even when the code is typed twice at once: one UPDATE wins
    if not await AddressClaim.filter(id=claim.id, used_at__isnull=True).update(used_at=now):
        return Confirmed("none")
    earlier = await Identity.filter(person_id=person.id, channel=channel).exclude(
        address=claim.address).values_list("address", flat=True)
    if earlier:
        await Identity.filter(person_id=person.id, channel=channel,
                              address__in=list(earlier)).delete()
    await accounts.link(channel, claim.address, person)
    return Confirmed("linked", claim.address, replaced=tuple(str(a) for a in earlier))


def command(channel: str
            ) -> Callable[[ServiceContext, InboundMessage, Person | None], Awaitable[list[Reply]]]:
    """The bot command that claims an address on `channel`: `/telefon NUMBER` asks for a
    code, `/telefon CODE` confirms it, `/telefon` alone says how (templates `phone_*`)."""

    async def handle(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                     ) -> list[Reply]:
        assert person is not None  # the route is for linked people
        typed = "".join(msg.args)[:40]
        now = ctx.clock.now()
        if not typed:
            return [Reply("phone_usage", {"available": channel in ctx.channels})]
        if _CODE.match(typed):
            done = await confirm(ctx, person, channel, typed, now)
            return [Reply("phone_confirm", {"outcome": done.outcome, "number": done.address,
                                            "left": done.left, "replaced": list(done.replaced)})]
        asked = await request(ctx, person, channel, " ".join(msg.args)[:40], now)
        return [Reply("phone_request", {
            "outcome": asked.outcome, "number": asked.address,
            "minutes": int(CODE_TTL.total_seconds() // 60), "per_address": CODES_PER_ADDRESS,
            "per_person": CODES_PER_PERSON})]
    return handle
