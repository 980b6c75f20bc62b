"""The inbox worker: stored raw mail and updates → InboundMessage → router → outbox.

Pending rows are handled in batches, each batch in one transaction: the rows are taken
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several instances never handle one message
twice), every message is routed in arrival order, and the replies, the state changes and
the "done" marks commit together. One commit and one outbox insert per batch, not per
message, is what lets a burst of mail keep up with the SMTP intake.

If any message of a batch raises, the whole batch rolls back and its messages are handled
again one at a time, each in its own transaction: the good ones are answered as usual and
the bad one gets "something went wrong (ref: N)" — never a stack trace — while the log
keeps the details under the same reference.

No accepted mail ends in silence (issue #18): mail its reader rejects, or whose handling
fails for good, is set aside as `unread` for a clerk (handlers/unread.py, the console's
"Poczta nieodczytana") and its sender is told "we have passed it to the office" — unless
it is automatic mail, which is set aside unanswered. A store that is away for a moment is
nobody's fault: those messages stay pending and are tried again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from gateway.tasks import Woken
from handlers import accounts, catalogue, router, unread
from handlers.channels import Channel
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from handlers.notify import queue
from handlers.router import UNKNOWN
from store.errors import is_transient
from store.models import Person, RawInbound
from store.outbox import Delivery

log = logging.getLogger(__name__)

UNPARSEABLE = "unparseable"

# Each row is read by its channel (handlers/channels.py, `ctx.channels`): `read` turns the
# stored raw row into a message (or a reason); a `slow` reader (large input, DNS) runs in
# a worker thread; with a `glance` — what can still be read of a row it could not handle
# (sender, subject, loop verdict; never raises) — such rows are set aside for a clerk and
# their senders answered, and a channel without one keeps the older way: an apology
# where it can, and `failed`. A row of a channel that is not registered is unparseable.

#: (row, the message or None, why it gets no answer)
Work = tuple[RawInbound, InboundMessage | None, str]


def redact(address: str) -> str:
    """Logs keep the domain, not the person."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{address[:2]}***"


class Inbox(Woken):
    def __init__(self, ctx: ServiceContext, outbox_wake: Callable[[], None], batch: int = 5,
                 linger: float = 0.0) -> None:
        super().__init__()
        self.ctx = ctx
        self.channels = ctx.channels
        self.outbox_wake = outbox_wake
        # a batch holds SQLite's single connection while it runs, and every API write and
        # webhook commit waits for it: with five messages (~10 ms) the webhook benchmark
        # measured 0.30–0.42 of bare aiohttp, with ten 0.22–0.36, with fifty 0.10; the
        # mail path measured the same with two, five or ten (bench/hook_endpoints.py,
        # bench/smtp_inbound.py)
        self.batch = batch
        self.linger = linger
        #: called with "unreadable" or "failed" for each message set aside, after its
        #: commit (the `emil_unread_mail_total` counter)
        self.set_aside_hook: Callable[[str], None] = lambda why: None

    async def run(self, poll_seconds: float = 2.0) -> None:
        while True:
            self.wake.clear()
            handled = await self.drain()
            self.beat()
            if handled >= self.batch:
                continue  # a backlog: straight on
            if not handled:
                await self.idle(poll_seconds)
            # let the rest of a burst arrive: per message, a batch of ten costs about a
            # third of ten batches of one (bench/smtp_inbound.py)
            await asyncio.sleep(self.linger)

    async def drain(self) -> int:
        """Handle one batch of pending rows in arrival order; returns how many were looked at."""
        rows = await RawInbound.filter(status="pending").order_by("id").limit(self.batch)
        if not rows:
            return 0
        if any(getattr(self.channels.get(row.channel), "slow", False) for row in rows):
            # MIME parsing of a large mail and the DKIM check's DNS lookups take time:
            # off the event loop, which SMTP, HTTP and the outbox share
            work = await asyncio.to_thread(lambda: [self.parse(row) for row in rows])
        else:
            work = [self.parse(row) for row in rows]
        await self.fetch_files(work)
        await catalogue.prepare(self.ctx, [msg for _, msg, _ in work if msg is not None])
        try:
            await self.handle_batch(work)
        except Exception as error:
            if is_transient(error):
                raise  # the store is away: nothing is marked; the supervisor retries later
            log.warning("a batch of %d inbound messages failed; handling them one by one",
                        len(work), exc_info=True)
            for item in work:
                await self.handle_one(item)
        self.outbox_wake()
        return len(rows)

    async def fetch_files(self, work: list[Work]) -> None:
        """Files a message only names (photos and documents sent to the bot), fetched by
        its channel before the batch's transaction (network I/O inside it would hold
        SQLite's connection)."""
        for _, msg, _ in work:
            if msg is not None and msg.remote_files:  # named when the message was read
                fetch = self.channels[msg.channel].fetch
                if fetch is not None:
                    await fetch(msg, self.ctx.attachment_max_size)

    def parse(self, row: RawInbound) -> Work:
        try:
            msg, reason = self._parse(row)
        except Exception:
            log.exception("unparseable %s #%s", row.channel, row.id)
            return row, None, UNPARSEABLE
        if msg is None:
            log.info("no answer to %s #%s: %s", row.channel, row.id, reason)
        return row, msg, reason

    def _parse(self, row: RawInbound) -> tuple[InboundMessage | None, str]:
        """The message, or None and why it gets no answer: each channel's own reader."""
        return self.channels[row.channel].read(row, self.ctx)

    def glance(self, row: RawInbound) -> Callable[[RawInbound, ServiceContext], Any] | None:
        """The row's channel's `glance`, if it has one."""
        channel: Channel | None = self.channels.get(row.channel)
        return channel.glance if channel is not None else None

    async def handle_batch(self, work: list[Work]) -> None:
        """Route a batch in one transaction; raises (and rolls back) if any message fails."""
        now = self.ctx.clock.now()
        marks: dict[tuple[str, str], list[int]] = defaultdict(list)
        deliveries: list[Delivery] = []
        set_aside = 0
        async with in_transaction():
            taken = await take([row.id for row, _, _ in work])
            senders = await known_senders([msg for row, msg, _ in work if row.id in taken])
            for row, msg, reason in work:
                if row.id not in taken:
                    continue  # another instance has it
                if msg is None and reason == UNPARSEABLE and self.glance(row):
                    deliveries += await self.set_aside(row, unread.UNREADABLE, now) or []
                    set_aside += 1
                    continue
                marks[_outcome(msg, reason)].append(row.id)
                if msg is not None:
                    sender = senders.pop((msg.channel, msg.address), UNKNOWN)
                    deliveries += await self.answer(row, msg, sender)
            for (status, note), ids in marks.items():
                await RawInbound.filter(id__in=ids).update(status=status, note=note,
                                                           processed_at=now)
            await queue(deliveries, now)
        for _ in range(set_aside):
            self.set_aside_hook(unread.UNREADABLE)

    async def handle_one(self, item: Work) -> None:
        """One message in its own transaction; a failure gets the sender an apology."""
        row, msg, reason = item
        now = self.ctx.clock.now()
        if msg is None:
            if reason == UNPARSEABLE and self.glance(row):
                await self.set_aside_alone(row, unread.UNREADABLE, now)
                return
            status, note = _outcome(msg, reason)
            await RawInbound.filter(id=row.id, status="pending").update(
                status=status, note=note, processed_at=now)
            return
        try:
            async with in_transaction():
                taken = await RawInbound.filter(id=row.id, status="pending").update(
                    status="done", processed_at=now)
                if taken:
                    await queue(await self.answer(row, msg), now)
        except Exception as error:
            if is_transient(error):
                raise  # not the message's fault: leave it pending for the next round
            reference = secrets.token_hex(4)
            log.exception("error handling %s #%s from %s (ref: %s)", row.channel, row.id,
                          redact(msg.address), reference)
            if self.glance(row):
                await self.set_aside_alone(row, unread.FAILED, now, reference)
                return
            async with in_transaction():
                await RawInbound.filter(id=row.id).update(
                    status="failed", note=f"ref {reference}", processed_at=now)
                apology = router.to_deliveries(self.ctx, msg, None,
                                               [Reply("error", {"reference": reference})])
                await queue(apology, now)

    async def set_aside(self, row: RawInbound, why: str, now: datetime,
                        reference: str | None = None, answer: bool = True
                        ) -> list[Delivery] | None:
        """Mark a pending message `unread` for a clerk with what can be read of it (inside
        the caller's transaction); the "passed to the office" answer to queue, unless the
        mail is automatic (mail/loops.py) or `answer` is off. None if the row was no longer
        pending (another instance had it)."""
        reference = reference or secrets.token_hex(4)
        glance = self.glance(row)
        assert glance is not None  # the callers checked
        seen = glance(row, self.ctx)
        answered = answer and seen.automatic is None
        if why == unread.UNREADABLE:
            log.warning("unreadable %s #%s set aside for the office (ref: %s)%s", row.channel,
                        row.id, reference, f"; no answer: {seen.automatic}" if seen.automatic
                        else "")
        summary = {"why": why, "address": seen.address, "subject": seen.subject,
                   "size": seen.size, "answered": answered, "reference": reference,
                   "message_id": seen.message_id, "language": seen.language_hint,
                   "automatic": seen.automatic}
        note = f"ref {reference}" if why == unread.FAILED else f"{UNPARSEABLE}, ref {reference}"
        taken = await RawInbound.filter(id=row.id, status="pending").update(
            status=unread.WAITING, note=note, summary=summary, processed_at=now)
        if not taken:
            return None
        if not answered:
            return []
        msg = InboundMessage(channel=row.channel, address=seen.address, subject=seen.subject,
                             mailbox=(row.envelope or {}).get("mailbox") or None,
                             message_id=seen.message_id, references=seen.references,
                             language_hint=seen.language_hint, inbound_id=row.id)
        return router.to_deliveries(self.ctx, msg, None, [Reply("unread_received", {
            "reference": reference, "subject": seen.subject})])

    async def set_aside_alone(self, row: RawInbound, why: str, now: datetime,
                              reference: str | None = None) -> None:
        """`set_aside` in a transaction of its own, answer and all; if even that fails (not
        for a passing store outage), the mail is still set aside, unanswered, rather than
        lost."""
        try:
            async with in_transaction():
                answer = await self.set_aside(row, why, now, reference)
                await queue(answer or [], now)
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("could not answer %s #%s; set aside unanswered", row.channel, row.id)
            async with in_transaction():
                answer = await self.set_aside(row, why, now, reference, answer=False)
        if answer is not None:
            self.set_aside_hook(why)

    async def answer(self, row: RawInbound, msg: InboundMessage, person: Person | None = UNKNOWN
                     ) -> list[Delivery]:
        """Route one message (inside the caller's transaction); its replies to queue."""
        return await router.handle(self.ctx, msg, person)


async def take(ids: list[int]) -> set[int]:
    """Lock the still-pending rows among `ids` for this transaction; rows another
    instance holds are skipped. (`.only("id")`, not `.values_list`: Tortoise 1.1 drops
    `FOR UPDATE` from a values query.)"""
    rows = await (RawInbound.filter(id__in=ids, status="pending")
                  .select_for_update(skip_locked=True).only("id"))
    return {row.id for row in rows}


async def known_senders(messages: list[InboundMessage | None]
                        ) -> dict[tuple[str, str], Person | None]:
    """Who sent the messages of a batch, looked up together (one query, not one each).
    `pop` it: a later message of the same sender is looked up again when its turn
    comes, because an earlier one (`/start CODE`) may have linked the address."""
    addresses: dict[str, set[str]] = defaultdict(set)
    for msg in messages:
        if msg is not None:
            addresses[msg.channel].add(msg.address)
    senders: dict[tuple[str, str], Person | None] = {}
    for channel, group in addresses.items():
        people = await accounts.people_by_address(channel, group)
        senders.update({(channel, address): people.get(address) for address in group})
    return senders


def _outcome(msg: InboundMessage | None, reason: str) -> tuple[str, str]:
    """The row's final (status, note)."""
    if msg is not None:
        return "done", ""
    return ("failed" if reason == UNPARSEABLE else "ignored"), reason
