"""Turning "tell this person" into outbox rows: channel choice, rendering, fallbacks.

A person is reached on their preferred channel first (an explicit order from
`/ustawienia`, else the channel they last used, else Telegram before email); the other
channels they have are rendered too and ride along as fallbacks, so a blocked bot or a
bouncing mailbox falls through to the next channel without asking the handler again.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import make_msgid
from typing import Any

from handlers.context import ServiceContext
from store.models import Identity, MailThread, Person
from store.outbox import Delivery, enqueue

DEFAULT_ORDER = ("telegram", "email")


def ordered_channels(
    identities: list[tuple[str, str]], preferred: list[str], first: str | None = None
) -> list[tuple[str, str]]:
    """Order (channel, address) pairs: `first`, then `preferred`, then the defaults."""
    rank: list[str] = []
    for channel in ([first] if first else []) + list(preferred) + list(DEFAULT_ORDER):
        if channel and channel not in rank:
            rank.append(channel)
    by_channel: dict[str, str] = {}
    for channel, address in identities:
        by_channel.setdefault(channel, address)
    return [(c, by_channel[c]) for c in rank if c in by_channel]


def email_payload(
    ctx: ServiceContext,
    rendered: dict[str, str],
    *,
    mailbox: str,
    case: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
) -> dict[str, Any]:
    subject = rendered["subject"]
    if case and f"[{case}]" not in subject:
        subject = f"[{case}] {subject}"
    refs = list(references or [])
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    return {
        "from": ctx.address(mailbox),
        "subject": subject,
        "text": rendered["text"],
        "html": rendered["html"],
        "message_id": make_msgid(domain=ctx.mail_domain),
        "in_reply_to": in_reply_to,
        "references": refs[-10:],
        "case": case,
    }


def render_for(
    ctx: ServiceContext,
    channel: str,
    template: str,
    lang: str,
    context: dict[str, Any],
    *,
    mailbox: str = "sprawy",
    case: str | None = None,
    buttons: list[list[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    rendered = ctx.renderer.render(template, channel, lang, context)
    if channel == "email":
        return email_payload(ctx, rendered, mailbox=mailbox, case=case)
    payload: dict[str, Any] = {"text": rendered["text"]}
    if buttons:
        payload["buttons"] = buttons
    return payload


async def queue(deliveries: list[Delivery], now: datetime) -> None:
    """Put deliveries in the outbox, and record the Message-IDs of the case mail among them
    so that a plain reply finds its case. Call inside the transaction of their cause."""
    threads = []
    for d in deliveries:
        for payload in [d.payload] + [f["payload"] for f in d.fallbacks]:
            if payload.get("case") and payload.get("message_id"):
                threads.append(MailThread(message_id=payload["message_id"], case_id=payload["case"]))
    if threads:
        await MailThread.bulk_create(threads, ignore_conflicts=True)
    await enqueue(deliveries, now)


def build_delivery(
    ctx: ServiceContext,
    targets: list[tuple[str, str]],
    *,
    key: str,
    template: str,
    lang: str,
    context: dict[str, Any],
    priority: int,
    person_id: int | None = None,
    mailbox: str = "sprawy",
    case: str | None = None,
    not_before: datetime | None = None,
    buttons: list[list[tuple[str, str]]] | None = None,
    cause: str = "",
) -> Delivery | None:
    """One delivery to the first target, with the rest rendered as fallbacks."""
    if not targets:
        return None
    rendered = [
        {
            "channel": channel,
            "recipient": address,
            "payload": render_for(
                ctx, channel, template, lang, context, mailbox=mailbox, case=case, buttons=buttons
            ),
        }
        for channel, address in targets
    ]
    head, *rest = rendered
    return Delivery(
        key=f"{key}:{person_id if person_id is not None else head['recipient']}",
        channel=head["channel"],
        recipient=head["recipient"],
        payload=head["payload"],
        priority=priority,
        person_id=person_id,
        fallbacks=rest,
        not_before=not_before,
        cause=cause or key,
    )


def preferred_targets(person: Person, identities: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A person's (channel, address) pairs in the order to try: their explicit order from
    `/ustawienia`, else the channel they last used first, then Telegram before email."""
    first = None if person.channel_order else person.last_channel
    return ordered_channels(identities, person.channel_order or [], first)


async def person_targets(person: Person) -> list[tuple[str, str]]:
    identities = await Identity.filter(person_id=person.id).values_list("channel", "address")
    return preferred_targets(person, [(c, a) for c, a in identities])
