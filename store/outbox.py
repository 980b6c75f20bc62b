"""The outbox: the durable queue of everything that leaves the gateway.

A row is written in the same transaction as the change that caused it; its
`idempotency_key` (cause, recipient, channel) makes fan-out and re-imports insert it once.
Senders never read this table directly: a dispatcher claims due rows with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several instances never claim the same row),
sends them, and records the outcome here.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.expressions import F
from tortoise.functions import Count, Min
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from store.clock import window_end
from store.models import Identity, OptOut, Outbox, SentMail
from store.sql import as_models, on_postgres, sql


class SendError(Exception):
    """A sender could not deliver a row."""


class TransientSendError(SendError):
    """Worth retrying later, with backoff (network down, 5xx, relay busy)."""


class PermanentSendError(SendError):
    """Never going to work on this channel (bot blocked, mailbox unknown): fall back."""


class AddressFailing(PermanentSendError):
    """Permanent, and about the address, not the message: no later message to it will get
    through either (the person blocked the bot, the account or the mailbox is gone). The
    dispatcher marks the address failing, so that later notices go straight to the next
    channel, and moves on what waits for it (handlers/health.py).

    Args:
        reason: a short key saying why, worded for a clerk by handlers/health.REASONS
            (e.g. `blocked`, `deactivated`, `chat_not_found`, `mailbox_unknown`).
        detail: the channel's own words, kept in the row's `last_error` and the log.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class RateLimited(SendError):
    """The channel asked us to wait exactly `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after = retry_after


PRIORITY_REPLY = 0
PRIORITY_NOTICE = 5
PRIORITY_BULK = 9


@dataclass
class Delivery:
    """One outgoing message before it is an outbox row."""

    key: str
    channel: str
    recipient: str
    payload: dict[str, Any]
    priority: int = PRIORITY_NOTICE
    person_id: int | None = None
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    not_before: datetime | None = None
    cause: str = ""


async def enqueue(deliveries: list[Delivery], now: datetime) -> int:
    """Insert rows, skipping keys already queued. Call inside the cause's transaction."""
    if not deliveries:
        return 0
    rows = [
        Outbox(
            idempotency_key=d.key[:200],
            channel=d.channel,
            recipient=d.recipient,
            person_id=d.person_id,
            payload=d.payload,
            fallbacks=d.fallbacks,
            priority=d.priority,
            status="pending",
            next_attempt_at=d.not_before or now,
            cause=d.cause[:100],
            created_at=now,
        )
        for d in deliveries
    ]
    await Outbox.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    await remember_sent_mail(deliveries, now)
    return len(rows)


async def remember_sent_mail(deliveries: list[Delivery], now: datetime) -> None:
    """Record the Message-ID of every message queued (and of its fallbacks) that has one —
    mail does — with its recipient: a reply threaded to one proves its sender reads that
    mailbox (mail/channel.py). The payload says so, not the channel's name."""
    sent = [SentMail(message_id=payload["message_id"], recipient=recipient, created_at=now)
            for d in deliveries
            for recipient, payload in [(d.recipient, d.payload)] + [
                (f["recipient"], f["payload"]) for f in d.fallbacks]
            if payload.get("message_id")]
    if sent:
        await SentMail.bulk_create(sent, ignore_conflicts=True, batch_size=1000)


_CLAIM = (
    'UPDATE "outbox" SET "status" = \'sending\', "lease_until" = ?, "claimed_by" = ? '
    'WHERE "id" IN (SELECT "id" FROM "outbox" WHERE "channel" = ? AND "status" = \'pending\' '
    'AND "next_attempt_at" <= ? ORDER BY "priority", "next_attempt_at", "id" LIMIT ?{lock}) '
    'RETURNING *'
)


async def claim(
    channel: str, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Outbox]:
    """Take up to `limit` due rows of one channel, most urgent first, under a lease.

    One statement, one round trip: the ORM needs a transaction around a locking `SELECT`
    and an `UPDATE` (four round trips), which on the mail path cost more than the claim's
    work. On PostgreSQL the inner select skips rows another instance has locked."""
    db = Outbox._meta.db
    lock = " FOR UPDATE SKIP LOCKED" if on_postgres(db) else ""
    # every claim has a token of its own: a row this lane reclaims after its lease ran
    # out is another claim, and the first claim's late marks no longer touch it
    token = f"{worker[:48]}#{secrets.token_hex(6)}"
    rows = await db.execute_query_dict(sql(db, _CLAIM.format(lock=lock)),
                                       [now + lease, token, channel, now, limit])
    claimed = as_models(Outbox, rows)
    claimed.sort(key=lambda row: (row.priority, row.next_attempt_at, row.id))
    return claimed


async def reclaim_expired(now: datetime) -> int:
    """Rows whose lease ran out (their instance died mid-send) are due again: each is sent
    at most once more, the at-least-once window the design accepts. Kept out of `claim`
    so that the claim query stays a plain index range."""
    return await Outbox.filter(status="sending", lease_until__lt=now).update(
        status="pending", lease_until=None, claimed_by=None)


def held(row: Outbox) -> QuerySet[Outbox]:
    """The row, only while this claim still holds it: every mark goes through here, so a
    claim whose lease ran out (a relay slower than the lease) changes nothing."""
    return Outbox.filter(id=row.id, status="sending", claimed_by=row.claimed_by)


def by_claim(rows: list[Outbox]) -> dict[str | None, list[int]]:
    """Row ids grouped by the claim that holds them (one statement per claim)."""
    grouped: dict[str | None, list[int]] = {}
    for row in rows:
        grouped.setdefault(row.claimed_by, []).append(row.id)
    return grouped


async def renew_leases(rows: list[Outbox], now: datetime, lease: timedelta) -> int:
    """Extend the lease of rows still being sent, so nobody reclaims them meanwhile."""
    renewed = 0
    for token, ids in by_claim(rows).items():
        renewed += await Outbox.filter(id__in=ids, status="sending", claimed_by=token).update(
            lease_until=now + lease)
    return renewed


async def mark_sent(rows: list[Outbox], now: datetime) -> None:
    """Record delivered rows, one statement per claim and one commit for them all (a
    dispatcher's marks are grouped: each commit is an fsync on SQLite)."""
    grouped = by_claim(rows)
    if len(grouped) == 1:  # the common case: no BEGIN/COMMIT round trips around it
        [(token, ids)] = grouped.items()
        await _mark_claim_sent(token, ids, now)
        return
    async with in_transaction():
        for token, ids in grouped.items():
            await _mark_claim_sent(token, ids, now)


async def _mark_claim_sent(token: str | None, ids: list[int], now: datetime) -> None:
    await Outbox.filter(id__in=ids, status="sending", claimed_by=token).update(
        status="sent", sent_at=now, attempts=F("attempts") + 1, lease_until=None,
        last_error="")


async def release(row: Outbox, when: datetime) -> None:
    """Put a row back without counting an attempt (rate limits, per-chat spacing)."""
    await held(row).update(status="pending", next_attempt_at=when, lease_until=None,
                           claimed_by=None)


def backoff(attempts: int, base: float = 2.0, cap: float = 3600.0) -> timedelta:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
    And Jitter"): spreads retries of many rows that failed together."""
    ceiling = min(cap, base * (2**attempts))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


async def mark_retry(row: Outbox, now: datetime, error: str) -> None:
    await held(row).update(
        status="pending",
        claimed_by=None,
        attempts=row.attempts + 1,
        next_attempt_at=now + backoff(row.attempts),
        lease_until=None,
        last_error=error[:2000],
    )


def fallback_time(fallback: dict[str, Any], now: datetime) -> datetime:
    """When a fallback may leave: now, or when its person's quiet hours end if the
    fan-out recorded them with it (a Telegram failure at 23:00 does not mail at 23:00);
    the hours are the person's, and the rule is handlers/quiet.py's."""
    quiet = fallback.get("quiet")
    if not quiet:
        return now
    return window_end(now, quiet["start"], quiet["end"], ZoneInfo(quiet["zone"])) or now


async def mark_failed(row: Outbox, now: datetime, error: str) -> Outbox | None:
    """Record a permanent failure; queue the next fallback channel, if any, in the same
    transaction. Returns the fallback row."""
    async with in_transaction() as conn:
        updated = await held(row).using_db(conn).update(
            status="failed",
            attempts=row.attempts + 1,
            lease_until=None,
            last_error=error[:2000],
        )
        if not updated:
            return None  # no longer ours: whoever holds it now decides
        return await _queue_fallback(row, now, conn)


async def _queue_fallback(row: Outbox, now: datetime, conn: Any) -> Outbox | None:
    """The row's next channel, queued (once: its key is the row's own plus the channel)."""
    if not row.fallbacks:
        return None
    nxt, *rest = row.fallbacks
    fallback = Outbox(
        idempotency_key=f"{row.idempotency_key[:180]}>fb:{nxt['channel']}",
        channel=nxt["channel"],
        recipient=nxt["recipient"],
        person_id=row.person_id,
        payload=nxt["payload"],
        fallbacks=rest,
        priority=row.priority,
        status="pending",
        next_attempt_at=fallback_time(nxt, now),
        cause=row.cause,
        created_at=now,
    )
    await Outbox.bulk_create([fallback], ignore_conflicts=True, using_db=conn)
    return fallback


async def mark_bounced(row: Outbox, now: datetime, error: str) -> Outbox | None:
    """A sent message that came back for good (a bounce, later than the send): `bounced`,
    and on to its next channel as if the send had failed (store/outbox.mark_failed)."""
    async with in_transaction() as conn:
        updated = await Outbox.filter(id=row.id, status="sent").using_db(conn).update(
            status="bounced", last_error=error[:2000])
        return await _queue_fallback(row, now, conn) if updated else None


async def mark_delivered(row_id: int, channel: str, now: datetime) -> bool:
    """The channel reported the row delivered (an SMS delivery report): `delivered` at
    `now`. Only from `sent`: a report that comes twice, or one for a row of another
    channel, a row that bounced or one never sent, changes nothing. True if it did."""
    return bool(await Outbox.filter(id=row_id, channel=channel, status="sent").update(
        status="delivered", delivered_at=now))


async def opted_out(channel: str, address: str) -> bool:
    """Whether `address` asked for nothing more on `channel` (an SMS `STOP`)."""
    return await OptOut.filter(channel=channel, address=address).exists()


_REACHABLE = (
    'SELECT "i"."person_id", "i"."channel", "i"."address" FROM "identity" "i" '
    'WHERE "i"."person_id" IN ({ids}) AND "i"."failing_since" IS NULL AND NOT EXISTS '
    '(SELECT 1 FROM "opt_out" "o" WHERE "o"."channel" = "i"."channel" '
    'AND "o"."address" = "i"."address")')


async def reachable(people_ids: list[int]) -> list[tuple[int, str, str]]:
    """(person, channel, address) of every address of these people that may be used: not
    failing for good (a bounce, a blocked bot) and not opted out (a STOP). One statement
    for both rules (the fan-out asks once per notice: a second query per notice cost a
    batch of 10,000 grades 6 %), chunked by 5,000 people."""
    db = Identity._meta.db
    found: list[tuple[int, str, str]] = []
    for start in range(0, len(people_ids), 5000):
        chunk = people_ids[start:start + 5000]
        rows = await db.execute_query_dict(
            sql(db, _REACHABLE.format(ids=", ".join("?" * len(chunk)))), chunk)
        found += [(row["person_id"], row["channel"], row["address"]) for row in rows]
    return found


async def without_opted_out(addresses: dict[int, list[tuple[str, str]]]
                            ) -> dict[int, list[tuple[str, str]]]:
    """Each person's (channel, address) pairs less those that opted out, so a notice goes
    straight to the person's next channel rather than failing on the opted-out one first
    (the channel's sender refuses it anyway). One query per 5,000 addresses; nothing at
    all while nobody has opted out."""
    if not await OptOut.exists():
        return addresses
    pairs = sorted({pair for targets in addresses.values() for pair in targets})
    stopped: set[tuple[str, str]] = set()
    for start in range(0, len(pairs), 5000):
        chunk = pairs[start:start + 5000]
        stopped.update(await OptOut.filter(address__in=[a for _, a in chunk]).values_list(
            "channel", "address"))
    if not stopped:
        return addresses
    return {pid: [pair for pair in targets if pair not in stopped]
            for pid, targets in addresses.items()}


async def fail_waiting(channel: str, recipient: str, now: datetime, error: str) -> int:
    """Rows still waiting for an address that is known to fail: failed now, each on to its
    next channel, instead of bouncing one by one. Rows being sent are left to their send."""
    moved = 0
    async with in_transaction() as conn:
        rows = await Outbox.filter(channel=channel, recipient=recipient,
                                   status="pending").using_db(conn)
        for row in rows:
            updated = await Outbox.filter(id=row.id, status="pending").using_db(conn).update(
                status="failed", last_error=error[:2000])
            if updated:
                moved += 1
                await _queue_fallback(row, now, conn)
    return moved


_NEWEST = ('SELECT * FROM "outbox" WHERE "id" IN (SELECT MAX("id") FROM "outbox" '
           'WHERE {pairs} GROUP BY "channel", "recipient")')


async def newest_to(addresses: list[tuple[str, str]]) -> list[Outbox]:
    """The newest row to each (channel, address): one statement for all of them (a
    person's page shows each address's last delivery).

    The outbox has no index by recipient (adding one is a migration): this scans it —
    0.33 s for 500,000 rows on SQLite, measured — the cost of a console page, not of a
    send."""
    if not addresses:
        return []
    db = Outbox._meta.db
    pairs = " OR ".join(['("channel" = ? AND "recipient" = ?)'] * len(addresses))
    rows = await db.execute_query_dict(sql(db, _NEWEST.format(pairs=pairs)),
                                       [value for pair in addresses for value in pair])
    return as_models(Outbox, rows)


async def outcome_counts() -> dict[tuple[str, str], int]:
    """Rows per (channel, status), over the whole table (metrics): one grouped count that
    the status-led index answers without reading the rows (SQLite: a covering index scan,
    0.12 s for 500,000 rows on 2 cores — gateway/metrics.py recounts once a minute)."""
    rows = (
        await Outbox.all()
        .annotate(n=Count("id"))
        .group_by("channel", "status")
        .values_list("channel", "status", "n")
    )
    return {(channel, status): n for channel, status, n in rows}


async def pending_stats() -> dict[str, tuple[int, datetime | None]]:
    """Per channel: rows waiting to leave and the oldest one's creation time (metrics)."""
    rows = (
        await Outbox.filter(status__in=("pending", "sending"))
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .group_by("channel")
        .values("channel", "n", "oldest")
    )
    return {r["channel"]: (r["n"], r["oldest"]) for r in rows}
