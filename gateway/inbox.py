"""The inbox worker: stored raw mail and updates → InboundMessage → router → outbox.

Each raw row is taken inside the transaction that handles it (a conditional UPDATE from
`pending`, which on PostgreSQL also locks the row), so the replies, the state change and
the "done" mark commit together, and several instances never handle one message twice.
An unexpected error gets the sender "something went wrong (ref: N)" — never a stack
trace — while the log keeps the details under the same reference.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable

from telegram import Bot
from tortoise.transactions import in_transaction

from bots import inbound as telegram_inbound
from handlers import router
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from mail import loops
from mail import parse as mail_parse
from store.models import RawInbound
from store.outbox import PRIORITY_REPLY, Delivery, enqueue

log = logging.getLogger(__name__)


def redact(address: str) -> str:
    """Logs keep the domain, not the person."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{address[:2]}***"


class Inbox:
    def __init__(self, ctx: ServiceContext, bot: Bot | None,
                 outbox_wake: Callable[[], None]) -> None:
        self.ctx = ctx
        self.bot = bot
        self.outbox_wake = outbox_wake
        self.wake = asyncio.Event()

    def notify(self) -> None:
        self.wake.set()

    async def run(self, poll_seconds: float = 2.0) -> None:
        while True:
            self.wake.clear()
            handled = await self.drain()
            if not handled:
                try:
                    await asyncio.wait_for(self.wake.wait(), poll_seconds)
                except TimeoutError:
                    pass

    async def drain(self, limit: int = 200) -> int:
        """Handle pending rows in arrival order; returns how many were looked at."""
        rows = await RawInbound.filter(status="pending").order_by("id").limit(limit)
        for row in rows:
            await self.process(row)
        if rows:
            self.outbox_wake()
        return len(rows)

    def parse(self, row: RawInbound) -> tuple[InboundMessage | None, str]:
        """The message, or None and why it gets no answer."""
        if row.channel == "email":
            raw = bytes(row.payload)
            message = mail_parse.parse_bytes(raw)
            reason = loops.automatic_reason(message, row.envelope.get("from", ""),
                                            self.ctx.mail_domain)
            if reason:
                return None, f"automatic mail: {reason}"
            return mail_parse.to_inbound(message, row.envelope.get("from", ""),
                                         row.envelope.get("mailbox", ""), row.id), ""
        data = json.loads(bytes(row.payload))
        msg = telegram_inbound.to_inbound(data, self.bot, row.id)
        return msg, "" if msg else "update without a message"

    async def process(self, row: RawInbound) -> None:
        now = self.ctx.clock.now
        try:
            msg, reason = self.parse(row)
        except Exception:
            log.exception("unparseable %s #%s", row.channel, row.id)
            await RawInbound.filter(id=row.id, status="pending").update(
                status="failed", note="unparseable", processed_at=now())
            return
        if msg is None:
            log.info("no answer to %s #%s: %s", row.channel, row.id, reason)
            await RawInbound.filter(id=row.id, status="pending").update(
                status="ignored", note=reason, processed_at=now())
            return
        try:
            async with in_transaction():
                taken = await RawInbound.filter(id=row.id, status="pending").update(
                    status="done", processed_at=now())
                if not taken:
                    return  # another instance has it
                deliveries = await router.handle(self.ctx, msg)
                if msg.callback_id:
                    deliveries.insert(0, Delivery(
                        key=f"cbanswer:{row.id}", channel="telegram", recipient=msg.address,
                        payload={"answer_callback": msg.callback_id}, priority=PRIORITY_REPLY))
                await enqueue(deliveries, now())
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("error handling %s #%s from %s (ref: %s)", row.channel, row.id,
                          redact(msg.address), reference)
            async with in_transaction():
                await RawInbound.filter(id=row.id).update(
                    status="failed", note=f"ref {reference}", processed_at=now())
                apology = router.to_deliveries(self.ctx, msg, None,
                                               [Reply("error", {"reference": reference})])
                await enqueue(apology, now())
