"""STOP and START: SMS off and on for one number, honoured in one place (issue #19).

An opt-out is a row per (channel, address) in `opt_out` (store.models.OptOut), kept by
number, not by person: a number nobody linked may say STOP too. It is honoured by the
channel's sender (:class:`HonourOptOut`), so every path out — a reply, a notice, a
fallback from another channel — meets the same check: a stopped number's row fails with
PermanentSendError, which moves a notice on to the person's next channel.

The one SMS that goes to a stopped number is the confirmation of that STOP (its payload
says so, :data:`CONFIRMS_STOP`). A second STOP while stopped is not answered: each
answer costs the town a message and the person one more SMS they asked not to get.
START is answered, so the person knows SMS are on.

Both take effect whatever the number's limit on paid answers (handlers/router.py routes
every message; only answers are limited). Past that limit START goes unanswered, while
the STOP confirmation is `vital` and still goes, within a small allowance of its own —
so STOP and START in turn cannot buy an SMS each.
"""

from __future__ import annotations

import logging

from handlers.channels import Sender
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from store.models import OptOut, Outbox, Person
from store.outbox import PermanentSendError, opted_out

log = logging.getLogger(__name__)

#: the key, in a reply's context and then in its payload, of the STOP confirmation
CONFIRMS_STOP = "confirms_stop"


async def stop(ctx: ServiceContext, msg: InboundMessage, person: Person | None) -> list[Reply]:
    """SMS off for the sender's number; confirmed the first time only."""
    if await opted_out(msg.channel, msg.address):
        log.info("dropped: STOP from a number that has already stopped (not answered)")
        return []
    await OptOut.create(channel=msg.channel, address=msg.address, since=ctx.clock.now())
    return [Reply("sms_stopped", {CONFIRMS_STOP: True}, vital=True)]


async def start(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                ) -> list[Reply]:
    """SMS on again for the sender's number (whether or not it had stopped)."""
    await OptOut.filter(channel=msg.channel, address=msg.address).delete()
    return [Reply("sms_started", {})]


class HonourOptOut:
    """A sender that refuses stopped numbers before the provider is paid for them."""

    def __init__(self, inner: Sender) -> None:
        self.inner = inner
        self.channel = inner.channel

    async def send(self, row: Outbox) -> None:
        if not row.payload.get(CONFIRMS_STOP) and await opted_out(self.channel, row.recipient):
            raise PermanentSendError("the number said STOP: no SMS until it says START")
        await self.inner.send(row)
