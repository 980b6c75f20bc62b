"""One source of time for the whole gateway.

Every rule that depends on time (quiet hours, digests, reminder levels, leases, link-code
expiry) reads it from a :class:`Clock`, so tests move time instead of sleeping. All stored
times are UTC; local time (``Europe/Warsaw``) is derived only where people see it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


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
