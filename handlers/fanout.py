"""One way to tell people something: the fan-out every notice type goes through.

Given the people to tell and a :class:`Notice`, it finds each person's targets in their
channel order (a paid channel — SMS — only where they chose it, as an urgent notice's
last fallback, or when nothing else reaches them: :func:`paid_last`), applies their
preference for the notice's type (`instant`, `digest` or `off`), holds an instant
message until their quiet hours end (unless the notice is urgent — fallbacks carry the
same `not_before`), renders once per language and channel when the content is the same
for everyone, builds the idempotency key (`<notice key>:<person>`) and writes the outbox
rows — or, for `digest`, the lines of the person's next daily digest. Call it inside the
transaction of the notice's cause.

A notice type is a name in :data:`NOTICE_TYPES`; a person's preferences live in
`Person.notices` (`/ustawienia`, `PATCH /api/v1/people/{id}` with `notices`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from handlers import i18n, unsubscribe
from handlers.channels import Envelope
from handlers.context import ServiceContext
from handlers.notify import preferred_targets, queue
from handlers.quiet import quiet_until
from store.models import DigestItem, Person
from store.outbox import PRIORITY_NOTICE, Delivery, reachable

#: every notice type a person may set to instant, digest or off
NOTICE_TYPES = ("grades", "attendance", "remarks", "homework", "messages", "topics",
                "lists")
#: a type nobody is told of until they ask (lesson topics: a line per lesson a day)
DEFAULT_OFF = ("topics",)
MODES = ("instant", "digest", "off")
#: what a person may turn off on one channel alone (`"<type>@<channel>": "off"` in
#: `Person.notices`), and what the one-click unsubscribe of a mail turns off (RFC 8058):
#: announcements, digests and notices — not the answers about a person's own case
#: (`cases`), not sign-in links
OPT_OUT_KINDS = (*NOTICE_TYPES, "announcements", "digest", "library", "alerts")
CHANNEL_MODES = ("off", "on")


#: what people type in `/ustawienia`, Polish first (with and without diacritics)
NOTICE_WORDS = {"oceny": "grades", "grades": "grades", "obecności": "attendance",
                "obecnosci": "attendance", "frekwencja": "attendance", "attendance": "attendance",
                "uwagi": "remarks", "remarks": "remarks", "zadania": "homework",
                "homework": "homework", "wiadomości": "messages", "wiadomosci": "messages",
                "messages": "messages", "tematy": "topics", "topics": "topics",
                "listy": "lists", "lists": "lists"}
MODE_WORDS = {"natychmiast": "instant", "od-razu": "instant", "instant": "instant",
              "dzienny": "digest", "dziennie": "digest", "digest": "digest", "daily": "digest",
              "wyłącz": "off", "wylacz": "off", "wyłączone": "off", "off": "off"}


def parse_notices(value: object, where: str = "notices",
                  channels: Iterable[str] = ()) -> dict[str, str]:
    """`{"grades": "instant", "attendance": "digest", "announcements@email": "off", …}`
    checked: the one validator of notice preferences, for the API, (through
    NOTICE_WORDS/MODE_WORDS) the bot and the one-click unsubscribe. A `<type>@<channel>`
    key is `off` or `on` for that channel alone, `channels` being the ones there are."""
    from handlers.message import InvalidInput

    if not isinstance(value, dict):
        raise InvalidInput(where, f"'{where}' must be an object of notice type → mode")
    for kind, mode in value.items():
        if isinstance(kind, str) and "@" in kind:
            base, _, channel = kind.partition("@")
            if base not in OPT_OUT_KINDS or channel not in channels:
                raise InvalidInput(f"{where}.{kind}", f"'{where}' per channel is <type>@<channel>"
                                   f" of {', '.join(OPT_OUT_KINDS)} and {', '.join(channels)}")
            if mode not in CHANNEL_MODES:
                raise InvalidInput(f"{where}.{kind}", f"'{where}.{kind}' is 'off' or 'on'")
            continue
        if kind not in NOTICE_TYPES:
            raise InvalidInput(f"{where}.{kind}", f"'{where}' types are {', '.join(NOTICE_TYPES)}")
        if mode not in MODES:
            raise InvalidInput(f"{where}.{kind}", f"'{where}.{kind}' is one of {', '.join(MODES)}")
    return dict(value)


def modes_of(person: Person) -> dict[str, str]:
    return {kind: mode_for(person, kind) for kind in NOTICE_TYPES}


def off_on(person: Person, kind: str, channel: str) -> bool:
    """Has the person turned this notice type off on this channel (unsubscribed)?"""
    return (person.notices or {}).get(f"{kind}@{channel}") == "off"


def mode_for(person: Person, kind: str) -> str:
    chosen = (person.notices or {}).get(kind)
    if chosen in MODES:
        return chosen
    if kind == "grades" and person.digest_mode == "daily":
        return "digest"
    return "off" if kind in DEFAULT_OFF else "instant"


@dataclass
class Notice:
    """What to tell. `context` is the template context, or a function of the person
    for per-person content (their child's entries). In a daily digest the notice is one
    line: its email template's subject, in the person's language.

    `personalise(recipient, channel, rendered)` adjusts the rendered parts for one
    person (an announcement's acknowledgement link) without rendering again, before the
    channel packs them — so that a channel that counts what it sends (SMS parts) counts
    the text as it goes; `carry` is what every payload of the notice carries besides
    (an announcement's attachment, kept once on it); `case` threads the mail with its
    case (subject tag, replies found by Message-ID)."""

    kind: str
    template: str
    key: str
    context: dict[str, Any] | Callable[[Person | None], dict[str, Any]]
    urgent: bool = False
    priority: int = PRIORITY_NOTICE
    mailbox: str = "sprawy"
    buttons: list[list[tuple[str, str]]] | None = None
    #: what the outbox rows are grouped by in counts (default: the key)
    cause: str = ""
    case: str | None = None
    #: the Message-ID a mail answers (a clerk's reply to the resident's mail)
    in_reply_to: str | None = None
    personalise: Callable[[Recipient, str, dict[str, str]], dict[str, str]] | None = None
    carry: dict[str, Any] | None = None


@dataclass
class Recipient:
    """Someone to tell, with where to reach them in the order to try. Usually one of our
    people; a case's requester may be only an address (`person` None)."""

    person: Person | None
    targets: list[tuple[str, str]]
    language: str = "pl"

    @property
    def key(self) -> str:
        if self.person is not None:
            return str(self.person.id)
        return self.targets[0][1] if self.targets else ""


@dataclass
class Plan:
    """The rows a fan-out will write, for callers that gather several notices into one
    write (the overdue run's per-reader groups)."""

    deliveries: list[Delivery] = field(default_factory=list)
    digest: list[DigestItem] = field(default_factory=list)
    off: int = 0
    unreachable: list[str] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        self.deliveries += other.deliveries
        self.digest += other.digest
        self.off += other.off
        self.unreachable += other.unreachable


@dataclass
class Outcome:
    queued: int = 0
    digested: int = 0
    off: int = 0
    unreachable: list[str] = field(default_factory=list)


async def addresses_of(people_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """Every (channel, address) of these people that may be used: an address whose
    messages fail for good (a bounce, a blocked bot) is skipped, and so is one that said
    STOP — the notice starts on the person's next channel (store/outbox.reachable)."""
    addresses: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for pid, channel, address in await reachable(people_ids):
        addresses[pid].append((channel, address))
    return addresses


async def recipients_of(ctx: ServiceContext, people: Iterable[Person],
                        addresses: dict[int, list[tuple[str, str]]] | None = None,
                        *, urgent: bool = False) -> list[Recipient]:
    """People (each once) with their targets in their channel order (the registered
    channels' order where they chose none), paid channels only as `paid_last` allows."""
    unique = {p.id: p for p in people}
    if addresses is None:
        addresses = await addresses_of(list(unique))
    default = ctx.channels.names
    return [Recipient(p, paid_last(ctx, p, preferred_targets(
                p, addresses.get(p.id, []), default=default), urgent), p.language)
            for p in unique.values()]


def paid_last(ctx: ServiceContext, person: Person | None, targets: list[tuple[str, str]],
              urgent: bool, *, also: Iterable[str] = ()) -> list[tuple[str, str]]:
    """A person's targets without the paid channels (SMS) they did not ask for: a paid
    channel stays where the person put it in their own channel order; otherwise it is
    an urgent notice's last fallback, and the way to reach someone who has no other
    channel that works (issue #19). Everything else would spend the town's money on
    what a free channel delivers. `also`: channels chosen for this notice alone (a
    case's answer goes back by the channel the resident last wrote by); `person` None:
    an address only, who chose no order."""
    chosen = {*((person.channel_order or ()) if person is not None else ()), *also}
    free = [t for t in targets if t[0] in chosen or not ctx.channels[t[0]].paid]
    if len(free) == len(targets) or not free:
        return targets
    return free + [t for t in targets if t not in free] if urgent else free


def plan(ctx: ServiceContext, recipients: Iterable[Recipient], notice: Notice,
         now: datetime) -> Plan:
    """Decide and render, without touching the store: per recipient an outbox row with
    fallbacks, a digest line, or nothing (off, or nowhere to reach them)."""
    out = Plan()
    shared: dict[tuple[str, str], dict[str, str]] = {}  # (lang, channel) → rendered text
    common = Envelope(mailbox=notice.mailbox, case=notice.case, in_reply_to=notice.in_reply_to,
                      buttons=notice.buttons)
    # "bez polskich znaków" is the person's, the text is shared: the channel's payload
    # function applies it, from the envelope
    plain = replace(common, plain_letters=True)
    for recipient in recipients:
        person = recipient.person
        mode = mode_for(person, notice.kind) if person is not None else "instant"
        lang = i18n.language(recipient.language)
        targets = recipient.targets
        if person is not None:
            targets = [(c, a) for c, a in targets if not off_on(person, notice.kind, c)]
        if mode == "off" or (recipient.targets and not targets):
            out.off += 1
            continue
        context = notice.context(person) if callable(notice.context) else notice.context
        if mode == "digest" and person is not None:
            line = ctx.renderer.email(notice.template, lang, context)["subject"]
            out.digest.append(DigestItem(person_id=person.id, kind=notice.kind,
                                         key=notice.key[:200], lines=[line], created_at=now))
            continue
        if not targets:
            out.unreachable.append(recipient.key)
            continue
        quiet = None
        if person is not None and not notice.urgent:
            quiet = {"start": person.quiet_start, "end": person.quiet_end,
                     "zone": ctx.zone.key}
        rendered: list[dict[str, Any]] = []
        envelope = plain if person is not None and person.plain_letters else common
        for channel, address in targets:
            shape = ctx.channels[channel]
            if callable(notice.context):
                text = shape.rendered(ctx.renderer, notice.template, lang, context)
            else:  # the same for everyone: rendered once per language and channel
                if (lang, channel) not in shared:
                    shared[(lang, channel)] = shape.rendered(
                        ctx.renderer, notice.template, lang, notice.context)
                text = shared[(lang, channel)]
            if notice.personalise:
                text = notice.personalise(recipient, channel, text)
            payload = shape.payload(ctx, text, envelope if person is None
                                    or not shape.opt_out_link
                                    or notice.kind not in OPT_OUT_KINDS else replace(
                # RFC 8058: the message's own way out, for this person, type and channel
                envelope, unsubscribe={"unsubscribe": unsubscribe.url(ctx, person.id,
                                                                      notice.kind, channel),
                                       "id": unsubscribe.list_id(ctx, notice.kind)}))
            if notice.carry:
                payload = {**payload, **notice.carry}
            # a fallback taken at night waits for the morning too (store/outbox.mark_failed)
            rendered.append({"channel": channel, "recipient": address, "payload": payload,
                             **({"quiet": quiet} if quiet else {})})
        head, *rest = rendered
        out.deliveries.append(Delivery(
            key=f"{notice.key}:{recipient.key}", channel=head["channel"],
            recipient=head["recipient"], payload=head["payload"], fallbacks=rest,
            priority=notice.priority, person_id=person.id if person is not None else None,
            cause=(notice.cause or notice.key)[:100],
            not_before=quiet_until(now, quiet["start"], quiet["end"], ctx.zone) if quiet
            else None))
    return out


async def write(planned: Plan, now: datetime) -> Outcome:
    """Write a plan's outbox rows and digest lines (inside the caller's transaction)."""
    await queue(planned.deliveries, now)
    if planned.digest:
        await DigestItem.bulk_create(planned.digest, ignore_conflicts=True, batch_size=1000)
    return Outcome(queued=len(planned.deliveries), digested=len(planned.digest),
                   off=planned.off, unreachable=planned.unreachable)


async def fan_out(ctx: ServiceContext, people: Iterable[Person | Recipient], notice: Notice,
                  now: datetime, *, addresses: dict[int, list[tuple[str, str]]] | None = None
                  ) -> Outcome:
    """Tell each of `people` (each once) about `notice`, by their preferences. Pass
    `addresses` (from :func:`addresses_of`) when fanning out to many in chunks."""
    given = list(people)
    if not given:
        return Outcome()
    recipients = [r for r in given if isinstance(r, Recipient)]
    recipients += await recipients_of(ctx, [p for p in given if isinstance(p, Person)],
                                      addresses, urgent=notice.urgent)
    if not recipients:
        return Outcome()
    return await write(plan(ctx, recipients, notice, now), now)


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
