"""What a bounce of our own mail changes: the address, the message, and the notices after it.

The mail channel reads the report (mail/bounces.py: VERP names the outbox row, flufl.bounce
says hard, soft or complaint) and routes it here as mail to the `bounce` mailbox with the
kind as its command and the row's id as its argument.

- **hard** (or the third soft bounce within a week — a full mailbox that stays full is
  as lost as an unknown one; M3AAWG's sender practices count repeated soft bounces so):
  the address is marked failing on its identity; the bounced message goes on to its
  next channel, and so does every message still waiting for that address, through the
  outbox's own fallback (the one a blocked Telegram bot takes); later notices skip the
  address (handlers/fanout.addresses_of) and the console shows it.
- **soft**: remembered, nothing more.
- **complaint** (a feedback-loop report: the person pressed "spam"): the same as the
  message's one-click unsubscribe (RFC 8058 link in its payload). A complaint about mail
  with no such link (an answer about the person's own case) is only logged.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from handlers import health, people
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from store import outbox
from store.models import Identity, Outbox, Person

log = logging.getLogger(__name__)

HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"
#: this many soft bounces within SOFT_WINDOW count as a hard one
SOFT_LIMIT = 3
SOFT_WINDOW = timedelta(days=7)


async def handle_report(ctx: ServiceContext, msg: InboundMessage,
                        person: Person | None) -> list[Reply]:
    """One bounce report (inside the inbox's transaction); never answered."""
    kind = msg.command or ""
    row = await Outbox.get_or_none(id=int(msg.args[0])) if msg.args else None
    if row is None or row.channel != "email":
        log.info("bounce for outbox #%s ignored: no such mail", msg.args[:1])
        return []
    now = ctx.clock.now()
    if kind == COMPLAINT:
        link = (row.payload.get("list") or {}).get("unsubscribe")
        if link:
            await people.unsubscribe(ctx, link.rsplit("/", 1)[1])
        else:
            log.info("complaint about outbox #%s (no list to leave)", row.id)
        return []
    if kind == SOFT and not await _soft_adds_up(row.recipient, now):
        return []
    if kind in (HARD, SOFT):
        # the reason is a key a clerk's page words (handlers/health.REASONS)
        await mark_failing(row, now, "bounced" if kind == HARD else "soft_bounces",
                           msg.text or kind)
    return []


async def _soft_adds_up(address: str, now: datetime) -> bool:
    """Remember one soft bounce; True when, with the recent ones, it makes a hard one."""
    identities = await Identity.filter(channel="email", address=address)
    hard = False
    for found in identities:
        recent = [t for t in (found.soft_bounces or [])
                  if datetime.fromisoformat(t) > now - SOFT_WINDOW] + [now.isoformat()]
        await Identity.filter(id=found.id).update(soft_bounces=recent[-SOFT_LIMIT:])
        hard = hard or len(recent) >= SOFT_LIMIT
    return hard


async def mark_failing(row: Outbox, now: datetime, reason: str, detail: str) -> None:
    """The address fails: marked (the rule every channel shares, handlers/health.py), and
    what was and is waiting for it moves on."""
    await health.mark_failing(row.channel, row.recipient, now, reason)
    await outbox.mark_bounced(row, now, f"bounced: {detail}")
    moved = await outbox.fail_waiting(row.channel, row.recipient, now,
                                      f"address failing: {reason}")
    log.info("outbox #%s bounced (%s); %d waiting message(s) moved on", row.id, detail, moved)
