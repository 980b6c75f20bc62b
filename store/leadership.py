"""Database-held leadership with a lease, for roles only one instance may play.

Telegram's limits are per bot, not per process: one instance sends Telegram messages and
(in polling mode) polls, the others stand by. The role is a row with a holder and an
expiry; the holder renews it well before it expires, and a dead holder's role passes on
once its lease runs out. One conditional UPDATE decides, so it works the same on SQLite
and PostgreSQL without home-made locking.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from store.models import Leadership


async def acquire(name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the role; True if `holder` has it until now + ttl."""
    await Leadership.bulk_create([Leadership(name=name, holder="", until=now - ttl)],
                                 ignore_conflicts=True)
    taken = await Leadership.filter(name=name, holder=holder).update(until=now + ttl)
    if not taken:
        taken = await Leadership.filter(name=name, until__lt=now).update(holder=holder,
                                                                         until=now + ttl)
    return bool(taken)


async def release(name: str, holder: str, now: datetime) -> None:
    """Give the role up at once (clean shutdown), so another instance need not wait."""
    await Leadership.filter(name=name, holder=holder).update(until=now - timedelta(seconds=1))
