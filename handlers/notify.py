"""Where a person is reached, and the mail payload: the pieces handlers/fanout.py builds on.

A person is reached on their preferred channel first (an explicit order from
`/ustawienia`, else the channel they last used, else the registry's order — Telegram before
email, handlers/channels.py); the other
channels they have are rendered too and ride along as fallbacks, so a blocked bot or a
bouncing mailbox falls through to the next channel without asking the handler again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import make_msgid
from typing import Any

from handlers.context import ServiceContext
from store.models import MailThread, Person
from store.outbox import Delivery, enqueue


def ordered_channels(
    identities: list[tuple[str, str]], preferred: list[str], first: str | None = None, *,
    default: Sequence[str],
) -> list[tuple[str, str]]:
    """Order (channel, address) pairs: `first`, then `preferred`, then `default` (the
    registered channels, `ctx.channels.names`); a channel not registered is dropped (an
    identity or a stored preference may outlive its channel's registration)."""
    rank: list[str] = []
    for channel in ([first] if first else []) + list(preferred) + list(default):
        if channel and channel not in rank and channel in default:
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


def preferred_targets(person: Person, identities: list[tuple[str, str]], *,
                      default: Sequence[str]) -> list[tuple[str, str]]:
    """A person's (channel, address) pairs in the order to try: their explicit order from
    `/ustawienia`, else the channel they last used first, then `default`."""
    first = None if person.channel_order else person.last_channel
    return ordered_channels(identities, person.channel_order or [], first, default=default)
