"""Whether each address still reaches its person, whatever the channel (issue #19).

An address fails for good when its channel says so: a mail bounce (handlers/bounces.py),
or a send refused because of the address itself — the person blocked the bot, the
account or the mailbox is gone (`store.outbox.AddressFailing`, raised by the senders and
handled by the dispatcher). Either way the same rule follows, here and in no channel's
own code: the identity is marked failing (the fan-out then skips it,
handlers/fanout.addresses_of, so the next notice goes straight to the next channel) and
what still waits for the address moves on through each row's own fallbacks.

A failing mark is lifted where the channel says a message from the address shows it works
again (`Channel.revived_by_message`: a Telegram chat that writes to the bot has unblocked
it); mail's mark stays until the address is set again. So that the router need not look
for a mark on every message, marking an address failing also forgets it as the person's
last channel: the next message from it changes `last_channel` back, and only then is the
mark looked for (handlers/router.handle).

The console's person page reads each address's state and last delivery from here, in two
queries however many addresses a person has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from store import outbox
from store.models import Identity, OptOut, Outbox, Person

log = logging.getLogger(__name__)

#: why an address fails, for a clerk (Polish, English); the keys are what the senders
#: and handlers/bounces.py store in `Identity.failing_reason`
REASONS: dict[str, tuple[str, str]] = {
    "blocked": ("odbiorca zablokował bota", "the person blocked the bot"),
    "deactivated": ("konto zostało usunięte", "the account was deleted"),
    "kicked": ("bot został usunięty z czatu", "the bot was removed from the chat"),
    "cant_initiate": ("odbiorca nie rozpoczął rozmowy z botem",
                      "the person never started a chat with the bot"),
    "forbidden": ("bot nie może pisać na ten czat", "the bot may not write to this chat"),
    "chat_not_found": ("czat nie istnieje", "the chat does not exist"),
    "mailbox_unknown": ("skrzynka nie istnieje", "the mailbox does not exist"),
    "mailbox_disabled": ("skrzynka jest wyłączona", "the mailbox is disabled"),
    "bounced": ("poczta wraca: skrzynka nie przyjmuje wiadomości",
                "mail bounces: the mailbox takes no mail"),
    "soft_bounces": ("poczta wraca od kilku dni (skrzynka pełna lub niedostępna)",
                     "mail has kept bouncing for days (a full or unavailable mailbox)"),
    "undelivered": ("wiadomości nie docierają", "messages do not arrive"),
}
#: what handlers/bounces.py stored before the keys above (flufl.bounce's verdict)
_OLD_REASONS = {"permanent failure": "bounced", "temporary failure": "soft_bounces",
                "hard": "bounced", "soft": "soft_bounces"}
#: an address that said STOP (store.models.OptOut)
STOPPED = ("odbiorca wypisał się (STOP)", "opted out (STOP)")


def reason_words(reason: str | None, lang: str) -> str:
    """A stored reason in words a clerk understands; an unknown one (a channel newer than
    this table) in general words rather than a channel's raw error text."""
    key = _OLD_REASONS.get(reason or "", reason or "")
    words = REASONS.get(key, REASONS["undelivered"])
    return words[0] if lang == "pl" else words[1]


async def mark_failing(channel: str, address: str, now: datetime, reason: str) -> int:
    """Mark the identities holding this address failing (the first reason stays), and
    forget it as their people's last channel (see the module's docstring); returns the
    identities newly marked. No channel's name in here: the caller says which."""
    async with in_transaction() as conn:
        found = Identity.filter(channel=channel, address=address, failing_since__isnull=True)
        people = await found.using_db(conn).values_list("person_id", flat=True)
        if not people:
            return 0
        marked = await found.using_db(conn).update(failing_since=now, failing_reason=reason[:200])
        await Person.filter(id__in=people, last_channel=channel).using_db(conn).update(
            last_channel=None)
    return marked


async def address_failing(channel: str, address: str, now: datetime, reason: str) -> int:
    """A send showed the address fails for good: marked, and every row still waiting for
    it moved on to its next channel now rather than failing one by one; returns the rows
    moved."""
    await mark_failing(channel, address, now, reason)
    moved = await outbox.fail_waiting(channel, address, now, f"address failing: {reason}")
    log.info("%s address failing (%s); %d waiting message(s) moved on", channel, reason, moved)
    return moved


async def revive(channel: str, address: str) -> int:
    """The address works again: its failing mark is lifted (one UPDATE that changes a row
    only if it was failing); returns the identities revived."""
    return await Identity.filter(channel=channel, address=address,
                                 failing_since__isnull=False).update(
        failing_since=None, failing_reason=None)


@dataclass(frozen=True)
class AddressHealth:
    """One identity of a person as the console shows it.

    Attributes:
        state: `working`, `failing` or `stopped` (the address said STOP).
        since: when it started failing or said STOP.
        why: the reason in the page's language (empty while it works).
        last: the newest outbox row to the address, if any.
    """

    channel: str
    address: str
    state: str
    since: datetime | None
    why: str
    last: Outbox | None


async def of_person(identities: list[dict[str, Any]], lang: str) -> list[AddressHealth]:
    """Each identity's state and last delivery: one query for the opt-outs and one for
    the newest rows, whatever the number of identities. `identities` are rows with
    `channel`, `address`, `failing_since` and `failing_reason`."""
    pairs = [(i["channel"], i["address"]) for i in identities]
    stopped: dict[tuple[str, str], datetime] = {}
    if pairs:
        for channel, address, since in await OptOut.filter(
                address__in={a for _, a in pairs}).values_list("channel", "address", "since"):
            stopped[(channel, address)] = since
    newest = {(row.channel, row.recipient): row for row in await outbox.newest_to(pairs)}
    health = []
    for identity, pair in zip(identities, pairs, strict=True):
        if pair in stopped:
            state, since = "stopped", stopped[pair]
            why = STOPPED[0] if lang == "pl" else STOPPED[1]
        elif identity["failing_since"] is not None:
            state, since = "failing", identity["failing_since"]
            why = reason_words(identity["failing_reason"], lang)
        else:
            state, since, why = "working", None, ""
        health.append(AddressHealth(pair[0], pair[1], state, since, why, newest.get(pair)))
    return health
