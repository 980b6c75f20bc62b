"""Quiet hours: when a notice may reach a person, in the town's time zone.

Like the school registers parents know, a notice that arrives during quiet hours
(default 22:00–07:00) waits until they end; it is never dropped. Equal start and end
means no quiet hours.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from store.clock import window_end


def quiet_until(now: datetime, start: str, end: str, zone: ZoneInfo) -> datetime | None:
    """The UTC moment quiet hours end if `now` falls inside them, else None (the time
    arithmetic, which has no rule in it, is the store's: the outbox's fallbacks wait for
    the same moment)."""
    return window_end(now, start, end, zone)
