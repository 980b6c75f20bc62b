"""People and their channels: link codes, `/start`, `/stop`, `/ustawienia`.

Link codes fit Telegram's deep-link rule (`t.me/<bot>?start=CODE`: at most 64 characters
of `A-Za-z0-9_-`, Telegram Bot API "Deep linking"); they are single-use and expire.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from handlers import preferences
from handlers.context import ServiceContext
from handlers.fanout import MODE_WORDS, NOTICE_WORDS, modes_of
from handlers.message import InboundMessage, InvalidInput, Reply
from handlers.notify import ordered_channels
from handlers.text import whole_number
from store.models import Identity, LinkCode, Person

LINK_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def new_person(ctx: ServiceContext, **fields: Any) -> Person:
    """Create a person with the town's defaults (`EMIL_QUIET_START`/`EMIL_QUIET_END`)
    unless the caller gives their own: the one place people come into being."""
    fields.setdefault("quiet_start", ctx.quiet_start)
    fields.setdefault("quiet_end", ctx.quiet_end)
    fields.setdefault("digest_hour", ctx.digest_hour)
    return await Person.create(**fields)


async def create_link_code(person: Person, now: datetime, ttl: timedelta) -> LinkCode:
    code = secrets.token_urlsafe(24)  # 32 characters of A-Za-z0-9_-
    return await LinkCode.create(code=code, person=person, expires_at=now + ttl)


async def person_by_address(channel: str, address: str) -> Person | None:
    """Whose address this is (None: nobody linked it)."""
    return (await people_by_address(channel, {address})).get(address)


async def people_by_address(channel: str, addresses: set[str]) -> dict[str, Person]:
    """Who holds each of these addresses, for one message or a whole inbox batch. Most
    mail comes from people the town has never linked, so the common answer is one indexed
    lookup that finds nothing (a join would cost twice that); a second query loads the
    people found."""
    if not addresses:
        return {}
    found = await Identity.filter(channel=channel, address__in=addresses).values_list(
        "address", "person_id")
    if not found:
        return {}
    people = {p.id: p for p in await Person.filter(id__in={pid for _, pid in found})}
    return {address: people[pid] for address, pid in found if pid in people}


async def link(channel: str, address: str, person: Person) -> None:
    """Bind an address to a person, moving it from whoever had it before."""
    await Identity.filter(channel=channel, address=address).delete()
    try:
        await Identity.create(person=person, channel=channel, address=address)
    except IntegrityError:  # pragma: no cover - a concurrent link of the same address won
        pass


async def handle_start(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    if not msg.args:
        if person:
            return [Reply("linked", {"name": person.name})]
        return [Reply("welcome", {})]
    code = msg.args[0]
    now = ctx.clock.now()
    if not LINK_CODE.match(code):
        return [Reply("link_code_invalid", {})]
    # single use even under concurrency: only one UPDATE can flip used_at from NULL
    claimed = await LinkCode.filter(code=code, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if not claimed:
        return [Reply("link_code_invalid", {})]
    entry = await LinkCode.get(code=code).prefetch_related("person")
    await link(msg.channel, msg.address, entry.person)
    return [Reply("linked", {"name": entry.person.name}, )]


async def handle_stop(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    removed = await Identity.filter(channel=msg.channel, address=msg.address).delete()
    return [Reply("unlinked" if removed else "not_linked", {})]


async def link_by_email(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    """Mail from an address proves it: answer with a personal `t.me/…?start=` link."""
    if person is None:
        name = msg.display_name or msg.address.split("@", 1)[0]
        person = await new_person(ctx, name=name[:200], roles=["citizen"])
        await link("email", msg.address, person)
    entry = await create_link_code(person, ctx.clock.now(), ctx.link_code_ttl)
    return [Reply("link_by_email", {"code": entry.code, "bot": ctx.bot_username})]


#: `/ustawienia polskie-znaki tak|nie`, `/settings plain-letters on|off`: the word and
#: what each answer makes of `Person.plain_letters` (Polish letters kept = not plain)
PLAIN_LETTERS = {"polskie-znaki": {"tak": False, "nie": True},
                 "plain-letters": {"on": True, "off": False, "yes": True, "no": False}}
#: two words people write apart, read as the one word above
_JOINED = {("polskie", "znaki"): "polskie-znaki", ("plain", "letters"): "plain-letters"}


def _words(args: list[str]) -> list[str]:
    """The arguments lower-cased, "polskie znaki" read as "polskie-znaki"."""
    words: list[str] = []
    for arg in (a.lower() for a in args):
        joined = _JOINED.get((words[-1], arg)) if words else None
        if joined:
            words[-1] = joined
        else:
            words.append(arg)
    return words


def channel_first(chosen: str, names: tuple[str, ...]) -> list[str]:
    """`chosen` first, then every other registered channel in the registry's order."""
    return [chosen, *(name for name in names if name != chosen)]


async def settings_reply(ctx: ServiceContext, person: Person, changed: bool) -> Reply:
    """The settings as they now are: the order the person is reached in (the fan-out's
    own rule, handlers/notify.py), which channels they have linked, and the rest."""
    names = ctx.channels.names
    first = None if person.channel_order else person.last_channel
    order = [c for c, _ in ordered_channels([(n, n) for n in names], person.channel_order or [],
                                            first, default=names)]
    held = set(await Identity.filter(person_id=person.id).values_list("channel", flat=True))
    return Reply("settings", {"person": person, "changed": changed, "modes": modes_of(person),
                              "order": order, "connected": [c for c in names if c in held],
                              "missing": [c for c in order if c not in held]})


async def handle_settings(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    """`/ustawienia [kanał <any registered channel>] [tryb natychmiast|dzienny]
    [cisza 22:00-07:00] [godzina 18] [język pl|en] [polskie-znaki tak|nie]` — with no
    arguments, shows the current settings."""
    assert person is not None
    args = _words(msg.args)
    changes: dict[str, Any] = {}
    values = args[1::2] + [""] * (len(args) % 2)  # a trailing word without a value
    for word, value in zip(args[0::2], values, strict=True):
        if word in ("kanał", "kanal", "channel") and value in ctx.channels.names:
            changes["channel_order"] = channel_first(value, ctx.channels.names)
        elif word in ("tryb", "mode") and value in ("natychmiast", "instant", "dzienny", "daily",
                                                   "digest"):
            changes["digest_mode"] = "instant" if value in ("natychmiast", "instant") else "daily"
        elif word in ("cisza", "quiet"):
            if value in ("off", "brak", "wyłącz", "wylacz"):
                changes["quiet_start"] = changes["quiet_end"] = "00:00"
            else:
                parts = [preferences.clock_time(p) for p in value.split("-")]
                if len(parts) != 2 or None in parts:
                    return [Reply("settings_invalid", {"word": word})]
                changes["quiet_start"], changes["quiet_end"] = parts
        elif word in ("godzina", "hour") and whole_number(value, high=23) is not None:
            changes["digest_hour"] = whole_number(value)
        elif word in ("język", "jezyk", "language", "lang") and value in ("pl", "en"):
            changes["language"] = value
        elif word in PLAIN_LETTERS and value in PLAIN_LETTERS[word]:
            changes["plain_letters"] = PLAIN_LETTERS[word][value]
        elif word in NOTICE_WORDS and value in MODE_WORDS:
            notices = dict(changes.get("notices") or {})
            notices[NOTICE_WORDS[word]] = MODE_WORDS[value]
            changes["notices"] = notices
        else:
            return [Reply("settings_invalid", {"word": word})]
    try:  # the words are the bot's; the rule is the API's (handlers/preferences.py)
        changes = preferences.parse_preferences(changes, person, ctx.channels.names)
    except InvalidInput as error:
        return [Reply("settings_invalid", {"word": error.field})]
    await preferences.set_preferences(person, changes)
    return [await settings_reply(ctx, person, bool(changes))]
