"""Quiet hours: when a notice may reach a person, in the town's time zone.

Like the school registers parents know, a notice that arrives during quiet hours
(default 22:00–07:00) waits until they end; it is never dropped. Equal start and end
means no quiet hours.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def _parse(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, start: str, end: str, zone: ZoneInfo) -> datetime | None:
    """The UTC moment quiet hours end if `now` falls inside them, else None."""
    begin, finish = _parse(start), _parse(end)
    if begin == finish:
        return None
    local = now.astimezone(zone)
    t = local.time()
    if begin < finish:
        inside = begin <= t < finish
        end_day = local.date()
    else:  # over midnight, e.g. 22:00–07:00
        inside = t >= begin or t < finish
        end_day = local.date() + timedelta(days=1) if t >= begin else local.date()
    if not inside:
        return None
    # build the local end time with the zone's rules for that day (DST-safe)
    return datetime.combine(end_day, finish, tzinfo=zone).astimezone(now.tzinfo)
