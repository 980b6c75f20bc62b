"""Library: loan sync, renewals by bot and email, reminders that send themselves."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from gateway.imports import run_import
from gateway.jobs import run_job
from store.models import Loan, LoanReminder, Outbox, Person, Renewal
from tests.conftest import LIBRARY_SECRET, Gateway, make_mail

URL = "/hooks/library/loans"
TODAY = date(2026, 11, 25)  # the fixture clock's day in Milanówek


def loan(n: int, card: str = "K1", due: date = TODAY + timedelta(days=3), **extra) -> dict:
    return {"id": f"L{n}", "card": card, "title": f"Książka {n}", "due": due.isoformat(),
            "renewals": 0, "max_renewals": 2, "reserved": False, "returned": False, **extra}


async def sync(gw: Gateway, loans: list[dict], hook_id: str = "sync_1"):
    body = json.dumps({"loans": loans}).encode()
    return await gw.client.post(URL, data=io.BytesIO(body),
                                headers=gw.signed(body, LIBRARY_SECRET, hook_id))


async def reader(gw: Gateway, chat: int = 6001, card: str = "K1", **kw) -> int:
    return await gw.linked(chat, f"Czytelnik {card}", library_card=card, **kw)


async def test_renewal_outcomes_by_bot(gw: Gateway) -> None:
    await reader(gw)
    resp = await sync(gw, [
        loan(1, due=TODAY + timedelta(days=3)),                       # renewable
        loan(2, due=TODAY + timedelta(days=3), reserved=True),        # reserved
        loan(3, due=TODAY + timedelta(days=3), renewals=2),           # limit reached
        loan(4, due=TODAY + timedelta(days=20)),                      # too soon
        loan(5, due=TODAY - timedelta(days=30)),                      # overdue past grace
        loan(6, due=TODAY - timedelta(days=5), returned=True),        # returned: not listed
    ])
    assert resp.status == 200 and (await resp.json())["created"] == 6
    [reply] = await gw.tg(6001, "/przedluz")
    assert "Przedłużono 1 z 5 wypożyczeń" in reply
    new_due = TODAY + timedelta(days=3) + timedelta(days=30)
    assert "✅ Książka 1 — przedłużono do 28 grudnia 2026" in reply
    assert new_due == date(2026, 12, 28)
    assert "❌ Książka 2 — nie przedłużono: zarezerwowana przez innego czytelnika" in reply
    assert "❌ Książka 3 — nie przedłużono: osiągnięto limit przedłużeń" in reply
    assert "❌ Książka 4 — nie przedłużono: za wcześnie" in reply
    assert "❌ Książka 5 — nie przedłużono: termin zwrotu minął zbyt dawno" in reply
    assert "Książka 6" not in reply
    renewed = await Loan.get(id="L1")
    assert renewed.due == new_due and renewed.renewals == 1
    assert await Renewal.filter(loan_id="L1", channel="telegram").count() == 1


async def test_blocked_and_unknown_card(gw: Gateway) -> None:
    person = await reader(gw)
    await sync(gw, [loan(1)])
    await Person.filter(id=person).update(library_blocked=True)
    [blocked] = await gw.tg(6001, "/renew")
    assert "konto czytelnika jest zablokowane" in blocked
    await gw.linked(6002, "Bez karty")
    [unknown] = await gw.tg(6002, "/przedluz")
    assert "Nie znamy Twojej karty" in unknown


async def test_renewal_and_listing_by_email(gw: Gateway) -> None:
    await gw.person("Pani Czytelniczka", library_card="K7", email="czyta@example.pl")
    await sync(gw, [loan(1, "K7"), loan(2, "K7", reserved=True)])
    [listing] = await gw.mail(make_mail("wypożyczenia", "", sender="czyta@example.pl",
                                        to="biblioteka@milanowek.example"),
                              to="biblioteka", sender="czyta@example.pl")
    text = listing.get_body(("plain",)).get_content()
    assert "Książka 1 — zwrot do 28 listopada 2026" in text
    assert listing["From"] == "biblioteka@milanowek.example"
    # a reply to our listing: threaded to a Message-ID we sent to that address
    [renewal] = await gw.mail(make_mail("Re: biblioteka", "przedłuż proszę\n\ndzięki",
                                        sender="czyta@example.pl",
                                        In_Reply_To=listing["Message-ID"]),
                              to="biblioteka", sender="czyta@example.pl")
    body = renewal.get_body(("plain",)).get_content()
    assert "Przedłużono 1 z 2 wypożyczeń" in body and "zarezerwowana" in body
    [stranger] = await gw.mail(make_mail("renew", "", sender="obcy@example.com"),
                               to="biblioteka", sender="obcy@example.com")
    assert "Nie znamy Twojej karty" in stranger.get_body(("plain",)).get_content()
    resp = await gw.client.get("/api/v1/library/renewals?since=2026-01-01T00:00:00Z",
                               headers=gw.admin)
    [row] = (await resp.json())["renewals"]
    assert row["loan"] == "L1" and row["channel"] == "email" and row["new_due"] == "2026-12-28"


async def test_reminder_levels_once_each_with_a_moved_clock(gw: Gateway) -> None:
    await reader(gw)
    await sync(gw, [loan(1, due=TODAY + timedelta(days=2)), loan(2, due=TODAY + timedelta(days=2))])
    sent = lambda: [t for t in gw.botapi.texts_to(6001) if t.startswith("⏰")]  # noqa: E731
    expected = {0: "termin zwrotu za 2 dni", 3: "Minął termin zwrotu", 9: "Tydzień po terminie",
                16: "Dwa tygodnie po terminie"}
    for day in range(0, 20):
        gw.clock.set(datetime(2026, 11, 25, 7, 0, tzinfo=timezone.utc) + timedelta(days=day))
        await run_job(gw.services, "overdue-reminders")
        await run_job(gw.services, "overdue-reminders")  # twice a day: still once per level
        await gw.drain()
        if day in expected:
            assert expected[day] in sent()[-1], (day, sent())
            assert "Książka 1" in sent()[-1] and "Książka 2" in sent()[-1]
    assert len(sent()) == 4  # one message per level listing both loans
    assert await LoanReminder.all().count() == 8


async def test_loan_first_seen_two_weeks_late_gets_only_that_reminder(gw: Gateway) -> None:
    await reader(gw)
    await sync(gw, [loan(1, due=TODAY - timedelta(days=15))])
    await run_job(gw.services, "overdue-reminders")
    await gw.drain()
    reminders = [t for t in gw.botapi.texts_to(6001) if t.startswith("⏰")]
    assert len(reminders) == 1 and "Dwa tygodnie" in reminders[0] and "15 dni po terminie" in reminders[0]


async def test_returned_loans_stop_reminders_and_resync_changes_nothing(gw: Gateway) -> None:
    await reader(gw)
    loans = [loan(1, due=TODAY - timedelta(days=1))]
    await sync(gw, loans, "s1")
    again = await sync(gw, loans, "s2")
    assert (await again.json())["unchanged"] == 1
    await sync(gw, [loan(1, due=TODAY - timedelta(days=1), returned=True)], "s3")
    summary = await run_job(gw.services, "overdue-reminders")
    assert summary["messages"] == 0


async def test_readers_without_channel_and_the_librarian_summary(gw: Gateway) -> None:
    await gw.linked(6100, "Pani Bibliotekarka", roles=["librarian"])
    await reader(gw, 6001, "K1")
    await gw.person("Bez kontaktu", library_card="K2")  # no email, no Telegram
    await sync(gw, [loan(1, "K1", due=TODAY - timedelta(days=1)),
                    loan(2, "K2", due=TODAY - timedelta(days=7)),
                    loan(3, "K3", due=TODAY - timedelta(days=1))])  # card nobody holds
    summary = await run_job(gw.services, "overdue-reminders")
    assert summary["messages"] == 1 and summary["by_level"] == {"overdue-1": 1}
    assert {u["card"] for u in summary["unreachable"]} == {"K2", "K3"}
    assert summary["unreachable_readers"] == 2
    await gw.drain()
    report = gw.botapi.texts_to(6100)[-1]
    assert "Wiadomości: 1" in report
    assert "Czytelnicy bez kanału kontaktu (do wysłania pocztą): 2" in report
    # names and titles stay in the console's list (one place for an erasure to find them)
    assert "Bez kontaktu" not in report and "K2" not in report and "Książka 2" not in report
    assert "/panel/biblioteka" in report
    again = await run_job(gw.services, "overdue-reminders")
    assert again["messages"] == 0


async def test_librarians_can_run_the_job_over_the_api(gw: Gateway) -> None:
    await reader(gw)
    await sync(gw, [loan(1, due=TODAY - timedelta(days=1))])
    resp = await gw.client.post("/api/v1/library/overdue-run", headers=gw.admin)
    assert resp.status == 200 and (await resp.json())["messages"] == 1
    resp = await gw.client.post("/api/v1/library/overdue-run")
    assert resp.status == 401


async def test_loan_hook_validation(gw: Gateway) -> None:
    resp = await sync(gw, [loan(1), {"id": "L2", "card": "K1", "title": "x", "due": "jutro"}])
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "loans[1].due"
    assert await Loan.all().count() == 0
    body = b'{"loans": []}'
    resp = await gw.client.post(URL, data=body, headers={"webhook-id": "x", "webhook-timestamp": "1",
                                                         "webhook-signature": "v1,AAAA"})
    assert resp.status == 401


async def test_loans_csv_import_is_idempotent(gw: Gateway, tmp_path: Path) -> None:
    path = tmp_path / "loans.csv"
    path.write_text("id,card,title,due,renewals,max_renewals,reserved,returned\n"
                    "L1,K1,Lalka,2026-12-01,0,2,false,false\n"
                    "L2,K1,Potop,nie-data,0,2,false,false\n", encoding="utf-8")
    report = await run_import(gw.services, "loans", str(path), progress=False)
    assert report.applied == 1 and report.errors == [
        "line 3: 'line 3.due' must be a date (YYYY-MM-DD)"]
    again = await run_import(gw.services, "loans", str(path), progress=False)
    assert again.applied == 0 and again.unchanged == 1
    assert await Outbox.all().count() == 0
