"""One source of time for the whole gateway.

Every rule that depends on time (quiet hours, digests, reminder levels, leases, link-code
expiry) reads it from a :class:`Clock`, so tests move time instead of sleeping. All stored
times are UTC; local time (``Europe/Warsaw``) is derived only where people see it.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


class Clock:
    """The real clock: aware UTC datetimes."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FrozenClock(Clock):
    """A clock that only moves when told to (tests, `run-job` dry runs)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(timezone.utc)

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


def _clock_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def window_end(now: datetime, start: str, end: str, zone: ZoneInfo) -> datetime | None:
    """If `now` falls inside the daily local window from `start` to `end` ("HH:MM" in
    `zone`; over midnight when `end` comes first, e.g. 22:00–07:00), the moment it ends,
    in `now`'s zone; else None. Equal start and end is no window at all."""
    begin, finish = _clock_time(start), _clock_time(end)
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
