"""What a case, and the attachment store as a whole, may still take (issue #18, fault 3).

One anonymous visitor opened a case through the API and posted fifteen 10 MiB files on
the residents' page in three seconds. Every way a file reaches a case — mail, the bot,
the residents' page — now asks :func:`admit` which of a message's files are kept. A file
is refused, in the order a person would want to hear it, when it is over the per-file
limit (`EMIL_ATTACHMENT_MAX_SIZE`), when the whole store would go over
`EMIL_ATTACHMENTS_MAX_TOTAL`, or when its case would go over
`EMIL_CASE_ATTACHMENTS_MAX_FILES` or `EMIL_CASE_ATTACHMENTS_MAX_BYTES`. The text of a
message is never refused here: the caller keeps it, lists the refused files with it for
the clerk (handlers/cases.with_refused) and names them to the sender with the reason.

Usage is a COUNT and a SUM over `attachment.size`, which the `(case_id, size)` index
covers: no attachment's data is read to count it.

When the store is full the admins are told once, through the fan-out and in the
transaction of the refusal, and again only after usage has fallen below
:data:`RESET_BELOW` of the limit and reached it again (a store hovering at its limit
does not send an alert per refusal). The counter row `attachments-full` holds the time
the alert went out (0: not full), so every process and instance agrees, and the
console's health page reads it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from tortoise.functions import Count, Sum

from handlers import fanout
from handlers.context import ServiceContext
from handlers.message import Attachment, InboundMessage
from store.models import Attachment as StoredAttachment
from store.models import Counter, Person

#: why a file was not stored: over the per-file size, the store full, the case's number
#: of files, the case's bytes (handlers/i18n.refusal says each in words)
REASONS = ("file_size", "not_fetched", "store_full", "case_files", "case_bytes")
#: the alert is sent again only after usage fell below this share of the limit
RESET_BELOW = 0.9
FULL_COUNTER = "attachments-full"


class Refused(NamedTuple):
    """A file that was not stored: its name and size, why, and the limit it met."""

    name: str
    size: int
    reason: str = "file_size"
    limit: int = 0


@dataclass
class Admitted:
    """A message's files split into those to store and those refused."""

    kept: list[Attachment] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


@dataclass
class StoreState:
    """The store's attachments at a glance, for the console's health page."""

    used: int
    limit: int
    full_since: datetime | None


async def case_usage(number: str) -> tuple[int, int]:
    """(files, bytes) kept with a case."""
    row = await StoredAttachment.filter(case_id=number).annotate(
        files=Count("id"), total=Sum("size")).first().values("files", "total")
    return int((row or {}).get("files") or 0), int((row or {}).get("total") or 0)


async def store_usage() -> int:
    """Bytes of every case's attachments together."""
    row = await StoredAttachment.all().annotate(total=Sum("size")).first().values("total")
    return int((row or {}).get("total") or 0)


async def admit(ctx: ServiceContext, number: str | None, msg: InboundMessage) -> Admitted:
    """Which of `msg`'s attachments the case `number` (None: a case being opened) keeps,
    and which are refused and why — with the files the channel already could not take
    (`msg.too_large`: over the size, or not fetched). Call in the transaction that
    stores the kept ones: a refusal because the store is full alerts the admins in it."""
    limits = ctx.attachments
    # the channel lists a file it could not take with its size: over the limit, it was too
    # large; within it, fetching failed (a Telegram download error is not "too large")
    out = Admitted(refused=[Refused(name[:255], size, "file_size" if size > ctx.attachment_max_size
                                    else "not_fetched", ctx.attachment_max_size)
                            for name, size in msg.too_large])
    wanted = []
    for a in msg.attachments:
        if len(a.data) > ctx.attachment_max_size:
            out.refused.append(Refused(a.filename[:255], len(a.data), "file_size",
                                       ctx.attachment_max_size))
        else:
            wanted.append(a)
    if not wanted:
        return out
    stored = await store_usage()
    files, total = await case_usage(number) if number else (0, 0)
    store_full = False
    for a in wanted:
        size = len(a.data)
        if stored + size > limits.store_bytes:
            out.refused.append(Refused(a.filename[:255], size, "store_full", limits.store_bytes))
            store_full = True
        elif files + 1 > limits.case_files:
            out.refused.append(Refused(a.filename[:255], size, "case_files", limits.case_files))
        elif total + size > limits.case_bytes:
            out.refused.append(Refused(a.filename[:255], size, "case_bytes", limits.case_bytes))
        else:
            out.kept.append(a)
            stored, files, total = stored + size, files + 1, total + size
    if store_full:
        await _alert_once(ctx, stored)
    elif stored < limits.store_bytes * RESET_BELOW:
        await _rearm()
    return out


async def _alert_once(ctx: ServiceContext, used: int) -> None:
    """Tell the admins that the store is full, unless they have been told already."""
    now = ctx.clock.now()
    await Counter.get_or_create(name=FULL_COUNTER, defaults={"value": 0})
    # one conditional UPDATE decides, so two processes refusing at once alert once
    if not await Counter.filter(name=FULL_COUNTER, value=0).update(value=int(now.timestamp())):
        return
    admins = [p for p in await Person.all() if "admin" in (p.roles or [])]
    await fanout.fan_out(ctx, admins, fanout.Notice(
        kind="alerts", template="attachments_full", key=f"attachments-full:{now.isoformat()}",
        context={"used": used, "limit": ctx.attachments.store_bytes},
        cause="attachments-full"), now)


async def _rearm() -> None:
    """Below the reset mark: the next time the store is full is a new alert. A read by
    key first, so the usual case (never full) writes nothing."""
    flag = await Counter.get_or_none(name=FULL_COUNTER)
    if flag is not None and flag.value:
        await Counter.filter(name=FULL_COUNTER).update(value=0)


async def store_state(ctx: ServiceContext) -> StoreState:
    """Usage, limit and since when the store has been full (None: it is not), as every
    instance sees it: the health page of any of them tells the same."""
    flag = await Counter.get_or_none(name=FULL_COUNTER)
    since = (datetime.fromtimestamp(flag.value, timezone.utc) if flag is not None and flag.value
             else None)
    return StoreState(used=await store_usage(), limit=ctx.attachments.store_bytes,
                      full_since=since)
