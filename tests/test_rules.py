"""Pure rules, checked in milliseconds (no store, no network): quiet hours across the
daylight-saving changes, rate limit buckets, notice preferences, Polish day phrases, reminder
levels, renewal refusals, loop detection, the pacer, route permissions, fallback holds."""

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
    from handlers.preferences import clock_time

    assert clock_time("7:00") == clock_time("07:00") == "07:00"
    assert clock_time("23:59") == "23:59"
    assert clock_time("24:00") is None and clock_time("7") is None and clock_time("") is None


# --- reminder levels, renewal refusals --------------------------------------------------


def test_reminder_level_is_the_highest_reached_and_due_soon_two_days_before() -> None:
    from handlers.library import level_for

    due = date(2026, 12, 10)
    expected = {date(2026, 12, 7): None, date(2026, 12, 8): "due-soon",
                date(2026, 12, 9): "due-soon", date(2026, 12, 10): None,
                date(2026, 12, 11): "overdue-1", date(2026, 12, 16): "overdue-1",
                date(2026, 12, 17): "overdue-7", date(2026, 12, 23): "overdue-7",
                date(2026, 12, 24): "overdue-14", date(2027, 3, 1): "overdue-14"}
    assert {day: level_for(due, day) for day in expected} == expected


def test_renewal_refusals_in_their_order() -> None:
    from handlers.context import LibraryRules
    from handlers.library import renewal_refusal

    ctx = SimpleNamespace(library=LibraryRules(grace_days=14, renew_window_days=7))
    today = date(2026, 12, 1)

    def loan(**fields):  # type: ignore[no-untyped-def]
        base = {"due": date(2026, 12, 5), "reserved": False, "renewals": 0, "max_renewals": 2}
        return SimpleNamespace(**{**base, **fields})

    assert renewal_refusal(loan(), today, ctx, blocked=False) is None
    assert renewal_refusal(loan(reserved=True), today, ctx, blocked=True) == "blocked"
    assert renewal_refusal(loan(reserved=True), today, ctx, blocked=False) == "reserved"
    assert renewal_refusal(loan(renewals=2), today, ctx, blocked=False) == "too_many"
    assert renewal_refusal(loan(due=date(2026, 12, 9)), today, ctx, blocked=False) == "too_soon"
    assert renewal_refusal(loan(due=date(2026, 12, 8)), today, ctx, blocked=False) is None
    assert renewal_refusal(loan(due=date(2026, 11, 16)), today, ctx, blocked=False) == "overdue"
    assert renewal_refusal(loan(due=date(2026, 11, 17)), today, ctx, blocked=False) is None


# --- loop detection ---------------------------------------------------------------------


def test_automatic_mail_is_recognised_and_a_person_s_is_not() -> None:
    from email.message import EmailMessage

    from mail.loops import automatic_reason

    def mail(**headers: str) -> EmailMessage:
        msg = EmailMessage()
        for name, value in headers.items():
            msg[name.replace("_", "-")] = value
        msg.set_content("treść")
        return msg

    ours = "milanowek.example"
    assert automatic_reason(mail(), "anna@example.org", ours) is None
    assert automatic_reason(mail(Auto_Submitted="no"), "anna@example.org", ours) is None
    assert automatic_reason(mail(), "<>", ours) == "null return path (bounce)"
    assert automatic_reason(mail(), "MAILER-DAEMON@example.org", ours) == "sender mailer-daemon"
    assert automatic_reason(mail(Auto_Submitted="auto-replied"), "a@example.org", ours)
    assert automatic_reason(mail(Precedence="bulk"), "a@example.org", ours)
    assert automatic_reason(mail(X_Loop="sprawy@milanowek.example"), "a@example.org", ours)
    assert automatic_reason(mail(X_Loop="other@example.org"), "a@example.org", ours) is None
    assert automatic_reason(mail(List_Id="<lista.example.org>"), "a@example.org", ours)


# --- the pacer --------------------------------------------------------------------------


async def test_the_pacer_spaces_evenly_and_never_exceeds_its_rate_in_any_second() -> None:
    from gateway.dispatcher import Pacer

    clock = [100.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    pacer = Pacer(30, time=lambda: clock[0], sleep=sleep)
    sent = []
    for n in range(300):
        if n % 50 == 49:
            clock[0] += 0.2  # a busy loop wakes late now and then
        await pacer.acquire()
        sent.append(clock[0])
    assert all(sum(1 for t in sent if start <= t < start + 1.0) <= 30 for start in sent)
    assert 300 / 30 - 1 <= sent[-1] - sent[0] <= 300 / 30 + 1  # the rate, late wake-ups made up


# --- route permissions ------------------------------------------------------------------


def test_who_may_use_which_command() -> None:
    from handlers.router import ROUTES, allowed

    routes = {r.name: r for r in ROUTES}
    nobody = None
    resident = SimpleNamespace(roles=[])
    parent = SimpleNamespace(roles=["parent"])
    staff = SimpleNamespace(roles=["staff"])
    admin = SimpleNamespace(roles=["admin"])
    table = {  # route: (unlinked, resident, parent, staff, admin)
        "help": (True, True, True, True, True),
        "case": (True, True, True, True, True),
        "grades": (False, False, True, False, True),
        "attendance": (False, False, True, False, True),
        "homework": (False, False, True, False, True),
        "loans": (False, True, True, True, True),
        "announce": (False, False, False, True, True),
        "settings": (False, True, True, True, True),
    }
    for name, expected in table.items():
        got = tuple(allowed(routes[name], who)  # type: ignore[arg-type]
                    for who in (nobody, resident, parent, staff, admin))
        assert got == expected, name
    assert all(r.help for r in ROUTES)  # the help line is a field of the route


# --- fallbacks wait for the morning too --------------------------------------------------


def test_a_fallback_taken_at_night_waits_for_the_end_of_quiet_hours() -> None:
    from store.outbox import fallback_time

    night = datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc)  # 23:30 in Milanówek
    quiet = {"start": "22:00", "end": "07:00", "zone": "Europe/Warsaw"}
    assert fallback_time({"channel": "email", "quiet": quiet}, night) == datetime(
        2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    assert fallback_time({"channel": "email"}, night) == night  # urgent: no hold
    noon = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
    assert fallback_time({"channel": "email", "quiet": quiet}, noon) == noon


# --- people and their preferences: one validator for the API, the CSV import, the bot ---


def test_a_person_is_checked_the_same_way_wherever_they_come_from() -> None:
    import pytest

    from handlers.message import InvalidInput
    from handlers.people import parse_person

    ok = parse_person(name=" Anna Nowak ", roles=["parent", "parent"], email="Anna@Example.org",
                      telegram_chat=123, units=["szkola-2"])
    assert (ok.name, ok.roles, ok.email, ok.telegram_chat) == ("Anna Nowak", ("parent",),
                                                               "anna@example.org", "123")
    for bad, field in ((dict(name="", roles=["parent"]), "name"),
                       (dict(name="A", roles=["king"]), "roles"),
                       (dict(name="A", roles=["parent"], email="nie-adres"), "email"),
                       (dict(name="A", roles=["parent"], language="de"), "language"),
                       (dict(name="A" * 500, roles=["parent"]), "name"),
                       (dict(name="A", roles=["parent"], units=["x" * 65]), "units")):
        with pytest.raises(InvalidInput) as raised:
            parse_person(**bad)  # type: ignore[arg-type]
        assert raised.value.field == field


def test_preferences_have_one_rule_for_the_bot_and_the_api() -> None:
    import pytest

    from handlers.message import InvalidInput
    from handlers.preferences import parse_preferences

    person = SimpleNamespace(notices={"grades": "digest"})
    CHANNELS = ("telegram", "email")
    assert parse_preferences({"quiet_start": "7:00", "quiet_end": "22:05",
                              "notices": {"attendance": "off"}}, person, CHANNELS) == {  # type: ignore[arg-type]
        "quiet_start": "07:00", "quiet_end": "22:05",
        "notices": {"grades": "digest", "attendance": "off"}}
    for bad in ({"digest_hour": 24}, {"digest_hour": True}, {"language": "de"},
                {"channel_order": ["fax"]}, {"quiet_start": "25:00"},
                {"notices": {"grades": "sometimes"}}, {"colour": "red"}):
        with pytest.raises(InvalidInput):
            parse_preferences(bad, person, CHANNELS)  # type: ignore[arg-type]


# --- search: folding and query words ------------------------------------------------------


def test_search_folds_polish_letters_and_never_passes_query_syntax() -> None:
    from store.search import fold, key_of, terms

    assert fold("Kościuszki ŁĄKA żółć") == "kosciuszki laka zolc"
    assert terms("Kościuszki, \"dziura\" OR x:* & !(y) 'z'") == [
        "kosciuszki", "dziura", "or", "x", "y", "z"]
    assert all(word.isalnum() or "_" in word for word in terms("a'b;c--d/*e*/"))
    assert key_of("UM-2026-000123") == 2026000123 > key_of("UM-2025-999999")


def test_every_notice_type_has_a_name_people_read_in_both_languages() -> None:
    from handlers import fanout, i18n

    for lang in i18n.LANGUAGES:
        assert set(i18n.NOTICE_NAMES[lang]) == set(fanout.NOTICE_TYPES)
        assert all(name and name[0].isupper() for name in i18n.NOTICE_NAMES[lang].values())


def test_a_lost_connection_passes_and_a_statement_too_big_does_not() -> None:
    import asyncpg

    from store.errors import is_transient

    assert is_transient(asyncpg.exceptions.InterfaceError("connection is closed"))
    assert is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("lost"))
    # retrying changes nothing: answered as a fault, not "try again later" for ever
    assert not is_transient(asyncpg.exceptions.InterfaceError(
        "the number of query arguments cannot exceed 32767"))
