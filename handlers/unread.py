"""Messages not understood (issue #18, fault 1): accepted input that could not become a
case — mail, and since #20's review any channel's (a Telegram update, an incoming SMS).

The inbox (gateway/inbox.py) answers the sender and sets such a message aside with status
`unread` and a summary of what its channel's `glance` could read of it; here are the
clerk's actions on it —
open a case from it (the clerk types what it says, the sender is the requester), or mark
it handled — each audited in its own transaction, and the counts that /metrics, /healthz
and the console show. The console (gateway/panel_unread.py) is a thin adapter over these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from handlers import audit, cases
from handlers.context import ServiceContext
from handlers.notify import queue
from store.models import Attachment as StoredAttachment
from store.models import Case, Person, RawInbound

#: mail waiting for a clerk, and mail a clerk has dealt with
WAITING = "unread"
HANDLED = "handled"
#: summary["why"]: the reader rejected it, or its handling failed for good
UNREADABLE = "unreadable"
FAILED = "failed"
#: what the queue lists, newest first (the count says how many more wait)
PAGE = 200
_LISTED = ("id", "channel", "received_at", "note", "summary", "envelope")


@dataclass(frozen=True)
class Glance:
    """A stored message its channel's reader rejected, or whose handling failed, as far
    as it can still be read (each channel's `glance`, handlers/channels.py): enough to
    answer its sender on the channel it came by and to show it to a clerk."""

    #: where an answer goes, as the channel's addresses are written; "" for nowhere
    address: str
    subject: str
    size: int
    #: why the message must get no answer (automatic mail, a group chat), or None
    automatic: str | None
    message_id: str | None = None
    references: list[str] = field(default_factory=list)
    language_hint: str | None = None


async def count_waiting(db: BaseDBAsyncClient | None = None) -> int:
    """How many wait for a clerk (one indexed count: /healthz asks on every probe, on
    the store's reader, `db`, so a long write does not hold the probe up)."""
    return await RawInbound.filter(status=WAITING).using_db(db).count()


async def waiting(limit: int = PAGE) -> list[dict[str, Any]]:
    """The queue, oldest first (the longest wait on top), without the payloads."""
    return await RawInbound.filter(status=WAITING).order_by("id").limit(limit).values(*_LISTED)


async def one(inbound_id: int) -> dict[str, Any] | None:
    """One unread mail, waiting or handled, without its payload."""
    found = await RawInbound.filter(id=inbound_id, status__in=(WAITING, HANDLED)).values(
        *_LISTED, "status", "handled_at", "handled_by_id", "case_number")
    return found[0] if found else None


async def original(inbound_id: int) -> bytes | None:
    """The mail as it arrived."""
    found = await RawInbound.filter(id=inbound_id, status__in=(WAITING, HANDLED)).values_list(
        "payload", flat=True)
    return bytes(found[0]) if found else None


def raw_file(ctx: ServiceContext, channel: str) -> tuple[str, str]:
    """(extension, content type) of a stored original of `channel` (`Channel.raw_file`);
    a channel no longer registered gives bytes."""
    found = ctx.channels.get(channel)
    return found.raw_file if found is not None else ("bin", "application/octet-stream")


async def _claim(inbound_id: int, clerk: Person, now: datetime) -> dict[str, Any] | None:
    """Take a waiting mail off the queue (one UPDATE decides: two clerks, or two tabs,
    cannot both act on it); its summary, or None if it was not waiting."""
    found = await one(inbound_id)
    if found is None or found["status"] != WAITING:
        return None
    taken = await RawInbound.filter(id=inbound_id, status=WAITING).update(
        status=HANDLED, handled_at=now, handled_by_id=clerk.id)
    return found if taken else None


async def open_case(ctx: ServiceContext, inbound_id: int, *, subject: str, text: str,
                    clerk: Person, actor: audit.Actor) -> Case | None:
    """A case from an unread message, with the clerk's subject and text; the sender is its
    requester by address only, on the channel it came by (an unread message proves
    nobody, as a forged From must not file in a resident's name: handlers/identity.py)
    and gets the usual confirmation with the access code. The original is kept with the
    case as `oryginal.<ext>`, in its channel's form (`Channel.raw_file`). None if the
    message is not waiting any more. Who may: `cases.may_act`, as for any staff action
    on a case (else `audit.Refused`)."""
    if not cases.may_act(actor, ctx.cases_unit):
        raise audit.Refused("forbidden", "unread.open_case")
    now = ctx.clock.now()
    async with in_transaction():
        found = await _claim(inbound_id, clerk, now)
        if found is None:
            return None
        summary = found["summary"] or {}
        address = summary.get("address")
        channel = found["channel"]
        draft = cases.NewCase(subject=subject, body=text, channel=channel,
                              contacts=((channel, address),) if address else (),
                              lang=summary.get("language") or "pl",
                              message_id=summary.get("message_id"))
        [(case, _, confirmation)] = await cases.create_cases(ctx, [draft], confirm=True)
        raw = await original(inbound_id)
        if raw:
            # the original goes with the case whatever its size (SMTP takes up to 25 MiB, a
            # resident's file up to 10): it is the only copy once retention deletes the
            # raw row, and a clerk chose to keep it
            extension, content_type = raw_file(ctx, channel)
            await StoredAttachment.create(case_id=case.number,
                                          filename=f"oryginal.{extension}",
                                          content_type=content_type, size=len(raw),
                                          data=raw, created_at=now)
        await RawInbound.filter(id=inbound_id).update(case_number=case.number)
        await queue([confirmation] if confirmation else [], now)
        await audit.record(actor, "unread.open_case", f"inbound:{inbound_id}", now,
                           case=case.number)
    return case


async def mark_handled(ctx: ServiceContext, inbound_id: int, *, clerk: Person,
                       actor: audit.Actor) -> bool:
    """Off the queue without a case (spam, a duplicate, answered by phone); False if it
    was not waiting. Who may: `cases.may_act` (else `audit.Refused`)."""
    if not cases.may_act(actor, ctx.cases_unit):
        raise audit.Refused("forbidden", "unread.handled")
    now = ctx.clock.now()
    async with in_transaction():
        if await _claim(inbound_id, clerk, now) is None:
            return False
        await audit.record(actor, "unread.handled", f"inbound:{inbound_id}", now)
    return True
