"""One way to tell people something: the fan-out every notice type goes through.

Given the people to tell and a :class:`Notice`, it finds each person's targets in their
channel order, applies their preference for the notice's type (`instant`, `digest` or
`off`), holds an instant message until their quiet hours end (unless the notice is
urgent — fallbacks carry the same `not_before`), renders once per language and channel
when the content is the same for everyone, builds the idempotency key
(`<notice key>:<person>`) and writes the outbox rows — or, for `digest`, the lines of the
person's next daily digest. Call it inside the transaction of the notice's cause.

A notice type is a name in :data:`NOTICE_TYPES`; a person's preferences live in
`Person.notices` (`/ustawienia`, `PATCH /api/v1/people/{id}` with `notices`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from handlers import i18n
from handlers.context import ServiceContext
from handlers.notify import email_payload, preferred_targets
from handlers.quiet import quiet_until
from store.models import DigestItem, Identity, Person
from store.outbox import PRIORITY_NOTICE, Delivery, enqueue

#: every notice type a person may set to instant, digest or off
NOTICE_TYPES = ("grades", "attendance", "remarks", "homework", "messages")
MODES = ("instant", "digest", "off")


#: what people type in `/ustawienia`, Polish first (with and without diacritics)
NOTICE_WORDS = {"oceny": "grades", "grades": "grades", "obecności": "attendance",
                "obecnosci": "attendance", "frekwencja": "attendance", "attendance": "attendance",
                "uwagi": "remarks", "remarks": "remarks", "zadania": "homework",
                "homework": "homework", "wiadomości": "messages", "wiadomosci": "messages",
                "messages": "messages"}
MODE_WORDS = {"natychmiast": "instant", "od-razu": "instant", "instant": "instant",
              "dzienny": "digest", "dziennie": "digest", "digest": "digest", "daily": "digest",
              "wyłącz": "off", "wylacz": "off", "wyłączone": "off", "off": "off"}


def parse_notices(value: object, where: str = "notices") -> dict[str, str]:
    """`{"grades": "instant", "attendance": "digest", …}` checked: the one validator of
    notice preferences, for the API and (through NOTICE_WORDS/MODE_WORDS) the bot."""
    from handlers.message import InvalidInput

    if not isinstance(value, dict):
        raise InvalidInput(where, f"'{where}' must be an object of notice type → mode")
    for kind, mode in value.items():
        if kind not in NOTICE_TYPES:
            raise InvalidInput(f"{where}.{kind}", f"'{where}' types are {', '.join(NOTICE_TYPES)}")
        if mode not in MODES:
            raise InvalidInput(f"{where}.{kind}", f"'{where}.{kind}' is one of {', '.join(MODES)}")
    return dict(value)


def modes_of(person: Person) -> dict[str, str]:
    return {kind: mode_for(person, kind) for kind in NOTICE_TYPES}


def mode_for(person: Person, kind: str) -> str:
    chosen = (person.notices or {}).get(kind)
    if chosen in MODES:
        return chosen
    if kind == "grades" and person.digest_mode == "daily":
        return "digest"
    return "instant"


@dataclass
class Notice:
    """What to tell. `context` is the template context, or a function of the person
    for per-person content (their child's entries). In a daily digest the notice is one
    line: its email template's subject, in the person's language."""

    kind: str
    template: str
    key: str
    context: dict[str, Any] | Callable[[Person], dict[str, Any]]
    urgent: bool = False
    priority: int = PRIORITY_NOTICE
    mailbox: str = "sprawy"
    buttons: list[list[tuple[str, str]]] | None = None
    #: what the outbox rows are grouped by in counts (default: the key)
    cause: str = ""


@dataclass
class Outcome:
    queued: int = 0
    digested: int = 0
    off: int = 0
    unreachable: list[int] = field(default_factory=list)


async def fan_out(ctx: ServiceContext, people: Iterable[Person], notice: Notice,
                  now: datetime) -> Outcome:
    """Tell each of `people` (each once) about `notice`, by their preferences."""
    unique = {p.id: p for p in people}
    outcome = Outcome()
    if not unique:
        return outcome
    addresses: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for pid, channel, address in await Identity.filter(person_id__in=list(unique)).values_list(
            "person_id", "channel", "address"):
        addresses[pid].append((channel, address))
    shared: dict[tuple[str, str], dict[str, str]] = {}  # (lang, channel) → rendered text
    deliveries: list[Delivery] = []
    digest: list[DigestItem] = []
    for person in unique.values():
        mode = mode_for(person, notice.kind)
        lang = i18n.language(person.language)
        if mode == "off":
            outcome.off += 1
            continue
        context = notice.context(person) if callable(notice.context) else notice.context
        if mode == "digest":
            line = ctx.renderer.email(notice.template, lang, context)["subject"]
            digest.append(DigestItem(person_id=person.id, kind=notice.kind, key=notice.key[:200],
                                     lines=[line], created_at=now))
            continue
        targets = preferred_targets(person, addresses[person.id])
        if not targets:
            outcome.unreachable.append(person.id)
            continue
        rendered = []
        for channel, address in targets:
            if callable(notice.context):
                text = ctx.renderer.render(notice.template, channel, lang, context)
            else:  # the same for everyone: rendered once per language and channel
                text = shared.get((lang, channel))
                if text is None:
                    text = shared[(lang, channel)] = ctx.renderer.render(
                        notice.template, channel, lang, notice.context)
            rendered.append({"channel": channel, "recipient": address,
                             "payload": _payload(ctx, notice, channel, text)})
        head, *rest = rendered
        deliveries.append(Delivery(
            key=f"{notice.key}:{person.id}", channel=head["channel"], recipient=head["recipient"],
            payload=head["payload"], fallbacks=rest, priority=notice.priority,
            person_id=person.id, cause=(notice.cause or notice.key)[:100],
            not_before=None if notice.urgent else quiet_until(
                now, person.quiet_start, person.quiet_end, ctx.zone)))
    await enqueue(deliveries, now)
    if digest:
        await DigestItem.bulk_create(digest, ignore_conflicts=True, batch_size=1000)
    outcome.queued, outcome.digested = len(deliveries), len(digest)
    return outcome


def _payload(ctx: ServiceContext, notice: Notice, channel: str,
             rendered: dict[str, str]) -> dict[str, Any]:
    """The outbox payload of rendered text; every mail gets a Message-ID of its own (a
    reply to it proves its reader, handlers/identity.py)."""
    if channel == "email":
        return email_payload(ctx, rendered, mailbox=notice.mailbox)
    payload: dict[str, Any] = {"text": rendered["text"]}
    if notice.buttons:
        payload["buttons"] = notice.buttons
    return payload


async def digest_run(ctx: ServiceContext) -> dict[str, Any]:
    """Each person whose digest hour it is gets one message with every waiting line."""
    now = ctx.clock.now()
    local = now.astimezone(ctx.zone)
    waiting = set(await DigestItem.filter(sent_at__isnull=True).values_list("person_id",
                                                                             flat=True))
    people = await Person.filter(id__in=waiting, digest_hour=local.hour)
    sent = 0
    for person in people:
        items = await DigestItem.filter(person_id=person.id, sent_at__isnull=True).order_by("id")
        sections: dict[str, list[str]] = defaultdict(list)
        for item in items:
            sections[item.kind].extend(item.lines)
        notice = Notice(kind="digest", template="school_digest",
                        key=f"school-digest:{local.date().isoformat()}",
                        context={"sections": [{"kind": k, "lines": v} for k, v in sections.items()],
                                 "day": now})
        outcome = await fan_out(ctx, [person], notice, now)
        if outcome.queued:
            await DigestItem.filter(id__in=[i.id for i in items]).update(sent_at=now)
            sent += 1
    return {"digests": sent}
