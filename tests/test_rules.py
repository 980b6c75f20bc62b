"""Pure rules, checked in milliseconds (no store, no network): quiet hours across the
daylight-saving changes, rate limit buckets, notice preferences, Polish day phrases."""

from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from handlers.fanout import mode_for
from handlers.i18n import on_day
from handlers.quiet import quiet_until
from handlers.ratelimit import Limit, RateLimiter

WARSAW = ZoneInfo("Europe/Warsaw")


def test_quiet_hours_end_at_local_seven_across_both_dst_changes() -> None:
    # the night of 28/29 March 2026 (clocks forward) and of 24/25 October 2026 (back)
    for night in (datetime(2026, 3, 28, 22, 30, tzinfo=timezone.utc),
                  datetime(2026, 10, 24, 22, 30, tzinfo=timezone.utc)):
        until = quiet_until(night, "22:00", "07:00", WARSAW)
        assert until is not None and until.astimezone(WARSAW).hour == 7
        assert until > night and (until - night).total_seconds() < 12 * 3600
    # in summer 07:00 in Milanówek is 05:00 UTC, in winter 06:00 UTC
    assert quiet_until(datetime(2026, 3, 28, 22, 30, tzinfo=timezone.utc), "22:00", "07:00",
                       WARSAW).hour == 5
    assert quiet_until(datetime(2026, 10, 24, 22, 30, tzinfo=timezone.utc), "22:00", "07:00",
                       WARSAW).hour == 6
    assert quiet_until(datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc), "22:00", "07:00",
                       WARSAW) is None
    assert quiet_until(datetime(2026, 6, 1, 23, 0, tzinfo=timezone.utc), "00:00", "00:00",
                       WARSAW) is None  # equal start and end: no quiet hours


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = [0.0]
    limiter = RateLimiter(Limit(per_hour=60, burst=3), lambda: clock[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == 60  # one a minute from now on
    assert limiter.take("b") == 0.0  # keys are separate
    clock[0] += 60
    assert limiter.take("a") == 0.0
    assert limiter.wait("a") == 60 and limiter.wait("c") == 0.0


def test_notice_preferences_default_to_instant_and_grades_follow_digest_mode() -> None:
    person = SimpleNamespace(notices=None, digest_mode="instant")
    assert mode_for(person, "attendance") == "instant"  # type: ignore[arg-type]
    person = SimpleNamespace(notices={"remarks": "off"}, digest_mode="daily")
    assert mode_for(person, "grades") == "digest"  # type: ignore[arg-type]
    assert mode_for(person, "remarks") == "off"  # type: ignore[arg-type]


def test_polish_day_phrases() -> None:
    assert on_day(date(2026, 12, 4), "pl") == "w piątek 4 grudnia"
    assert on_day(date(2026, 12, 1), "pl") == "we wtorek 1 grudnia"
    assert on_day(date(2026, 12, 2), "pl") == "w środę 2 grudnia"
    assert on_day(date(2026, 12, 5), "pl") == "w sobotę 5 grudnia"
    assert on_day(date(2026, 12, 4), "en") == "on Friday 4 December"


def test_one_rule_for_a_time_of_day() -> None:
    from handlers.accounts import clock_time

    assert clock_time("7:00") == clock_time("07:00") == "07:00"
    assert clock_time("23:59") == "23:59"
    assert clock_time("24:00") is None and clock_time("7") is None and clock_time("") is None
