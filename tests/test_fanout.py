"""The one fan-out, end to end: every service's notices go through it, and a fallback
taken during quiet hours waits for the morning like the first channel would."""

from __future__ import annotations

from datetime import datetime, timezone

from handlers import fanout
from store.models import Identity, Outbox, Person
from tests.conftest import Gateway


async def test_a_fallback_taken_at_night_mails_in_the_morning(gw: Gateway) -> None:
    person_id = await gw.linked(4101, "Ewa Nowak", ["parent"], email="ewa@example.org")
    assert await Identity.filter(person_id=person_id).count() == 2
    evening = datetime(2026, 11, 25, 20, 50, tzinfo=timezone.utc)  # 21:50 in Milanówek
    gw.clock.advance(seconds=(evening - gw.clock.now()).total_seconds())
    person = await Person.get(id=person_id)
    await fanout.fan_out(gw.services, [person], fanout.Notice(
        kind="messages", template="school_message", key="msg:test",
        context={"about": {"class_name": "3a"}, "title": "Wycieczka", "body": "W piątek.",
                 "sender": "wychowawczyni"}), gw.clock.now())
    gw.clock.advance(minutes=20)  # 22:10: the bot is blocked, Telegram says so
    gw.botapi.fail_next(403, "Forbidden: bot was blocked by the user")
    await gw.drain()
    fallback = await Outbox.get(channel="email")
    assert fallback.status == "pending"
    assert fallback.next_attempt_at == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
    assert gw.sent_mail() == []
    gw.clock.advance(seconds=(fallback.next_attempt_at - gw.clock.now()).total_seconds())
    await gw.drain()
    assert [m["To"] for m in gw.sent_mail()] == ["ewa@example.org"]


async def test_library_reminders_announcements_and_case_notices_share_the_fan_out(
        gw: Gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Each of them writes its rows through `fanout.plan`/`fanout.write` (one place for
    channel order, quiet hours, keys), so a spy on the plan sees every notice type."""
    seen: list[str] = []
    real_plan = fanout.plan

    def spy(ctx, recipients, notice, now):  # type: ignore[no-untyped-def]
        seen.append(notice.template)
        return real_plan(ctx, recipients, notice, now)

    monkeypatch.setattr(fanout, "plan", spy)
    from handlers import announcements, cases, library
    from store.models import Loan

    reader = await gw.linked(4102, "Adam Czytelnik", library_card="K-1")
    now = gw.clock.now()
    await Loan.create(id="L1", card="K-1", title="Lalka", due=now.date(), returned=False,
                      reserved=False, renewals=0, max_renewals=2, updated_at=now)
    gw.clock.advance(days=1)
    await library.overdue_run(gw.services)
    staff = await Person.create(name="Urzędniczka", roles=["staff", "admin"], units=["urzad"],
                                created_at=now)
    ann = await announcements.create(gw.services, author=staff, title="Przerwa w dostawie wody",
                                     body="Jutro 8–12.", audience={"roles": ["citizen"]},
                                     priority="normal")
    await announcements.publish(gw.services, ann)
    [(case, _, _)] = await cases.create_cases(gw.services, [cases.NewCase(
        subject="Dziura w drodze", body="ul. Kościuszki", category=None, channel="api",
        contacts=(("email", "jan@example.org"),))], confirm=True)
    await cases.add_staff_event(gw.services, case, status="in_progress", note="Zgłoszone.",
                                public=True)
    assert {"library_reminder", "announcement", "case_created", "case_update"} <= set(seen)
    assert await Outbox.filter(person_id=reader, cause="loan-reminder").count() == 1
