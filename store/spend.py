"""What a paid channel has spent in a month, kept so that every instance sees the same
count (issue #19): the statements only, no rules — which month, which cap and what a
message costs are the channel's (sms/budget.py).

A reservation is one conditional UPDATE (`units = units + n WHERE units + n <= cap`):
the database applies it or not, atomically, so two instances reserving the last parts at
once cannot both get them (on PostgreSQL the second UPDATE waits for the first's row lock
and then re-reads the row before testing its WHERE). The month's row is created by the
first reservation, with ON CONFLICT DO NOTHING: two instances creating it at once end
with one row.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import F

from store.models import ChannelSpend


async def reserve(channel: str, month: str, units: int, cap: int | None) -> bool:
    """Count `units` more for the month, if that keeps within `cap` (None: no cap).
    Returns whether they were counted."""
    for again in (False, True):
        rows = ChannelSpend.filter(channel=channel, month=month)
        if cap is not None:
            rows = rows.filter(units__lte=cap - units)
        if await rows.update(units=F("units") + units):
            return True
        if again:
            return False  # the row is there now: the cap said no
        # no row yet, or no room: create it if missing (another instance may be creating
        # it this instant — asking whether it exists first would race with that) and ask
        # once more
        await ChannelSpend.bulk_create([ChannelSpend(channel=channel, month=month, units=0)],
                                       ignore_conflicts=True)
    return False


async def give_back(channel: str, month: str, units: int) -> None:
    """Uncount units reserved for a message that did not go."""
    await ChannelSpend.filter(channel=channel, month=month).update(units=F("units") - units)


async def spent(channel: str, month: str) -> int:
    """Units counted for the month so far."""
    found = await ChannelSpend.get_or_none(channel=channel, month=month)
    return found.units if found is not None else 0


async def claim_exhausted(channel: str, month: str, now: datetime) -> bool:
    """Record that the month's cap was reached; True only for the one caller that recorded
    it (one conditional UPDATE), so whatever follows happens once a month."""
    return bool(await ChannelSpend.filter(channel=channel, month=month,
                                          exhausted_at__isnull=True).update(exhausted_at=now))


async def latest() -> dict[str, tuple[str, int]]:
    """Per channel, its latest month and what was spent in it (metrics)."""
    out: dict[str, tuple[str, int]] = {}
    for channel, month, units in await ChannelSpend.all().order_by("month").values_list(
            "channel", "month", "units"):
        out[channel] = (month, units)
    return out
