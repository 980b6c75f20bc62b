"""Reading lists by subscription (#20): the signed hook, subscribing in the bot and by mail,
news of new items only to subscribers and only once, quiet hours, RODO."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

from gateway.jobs import run_job
from handlers import audit, rodo
from handlers.reading_lists import item_key
from store.models import DigestItem, ListSubscription, Outbox, ReadingList, ReadingListItem
from tests.conftest import LIBRARY_SECRET, REGISTER_SECRET, Gateway, make_mail
from tests.doubles.botapi import callback_update

URL = "/hooks/library/lists"
LALKA = {"title": "Lalka", "author": "Bolesław Prus", "year": 1890, "isbn": "978-83-240-1"}
POTOP = {"title": "Potop", "author": "Henryk Sienkiewicz"}
FERDYDURKE = {"title": "Ferdydurke", "author": "Witold Gombrowicz", "note": "na półce 3"}
SOLARIS = {"title": "Solaris", "author": "Stanisław Lem", "year": 1961}


def nowosci(*items: dict, title: str = "Nowości listopada") -> dict:
    return {"id": "nowosci", "title": title, "description": "Co przyszło w tym miesiącu",
            "items": list(items)}


async def post(gw: Gateway, lists: list[dict], hook_id: str, secret: str = LIBRARY_SECRET):
    body = json.dumps({"lists": lists}).encode()
    return await gw.client.post(URL, data=io.BytesIO(body),
                                headers=gw.signed(body, secret, hook_id))


def list_texts(gw: Gateway, chat: int) -> list[str]:
    return [t for t in gw.botapi.texts_to(chat) if t.startswith("📚 <b>Nowości")]


def keyboard(gw: Gateway, chat: int) -> list[list[dict]]:
    return gw.botapi.messages_to(chat)[-1].params["reply_markup"]["inline_keyboard"]


async def test_the_hook_is_signed_checked_and_updates_a_list_by_id(gw: Gateway) -> None:
    assert (await post(gw, [nowosci(LALKA)], "l0", secret=REGISTER_SECRET)).status == 401
    bad = await post(gw, [{"id": "nowości listopada", "title": "X"}], "l1")
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "lists[0].id"
    no_title = await post(gw, [nowosci({"author": "Ktoś"})], "l2")
    assert no_title.status == 400 and (await no_title.json())["error"]["field"] == "lists[0].items[0].title"
    bad_year = await post(gw, [nowosci({**POTOP, "year": "dawno"})], "l3")
    assert bad_year.status == 400 and (await bad_year.json())["error"]["field"] == "lists[0].items[0].year"
    assert await ReadingList.all().count() == 0  # nothing of a refused body is kept

    first = await post(gw, [nowosci(LALKA, POTOP)], "l4")
    assert first.status == 200, await first.text()
    assert (await first.json())["created"] == 1 and (await first.json())["items_added"] == 2
    # sent again with the title corrected, Potop spelt differently, one book more: by id,
    # only the new book is added, the others keep their rows
    potop = await ReadingListItem.get(list_id="nowosci", title="Potop")
    again = await post(gw, [nowosci({**LALKA, "title": "Lalka (wyd. II)"},
                                    {"title": "POTOP", "author": "henryk  sienkiewicz."},
                                    FERDYDURKE, title="Nowości grudnia")], "l5")
    answer = await again.json()
    assert (answer["created"], answer["items_added"], answer["items_removed"]) == (0, 1, 0)
    assert (await ReadingList.get(id="nowosci")).title == "Nowości grudnia"
    assert await ReadingListItem.filter(list_id="nowosci").count() == 3
    assert (await ReadingListItem.get(key=potop.key)).id == potop.id
    assert await ReadingListItem.filter(title="Lalka (wyd. II)", isbn="978-83-240-1").exists()
    # a book left out of the list is gone from it
    third = await post(gw, [nowosci(LALKA, FERDYDURKE)], "l6")
    assert (await third.json())["items_removed"] == 1
    assert item_key("Łąka", "Żółw", "") == item_key("ŁĄKA!", "zolw", "") == "ta:laka|zolw"
    assert item_key("X", "Y", "83-240-1 x") == "isbn:832401X"


async def test_subscribe_in_the_bot_and_news_reach_a_subscriber_once(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA, POTOP)], "a1")
    await gw.linked(7001, "Czytelniczka")
    await gw.linked(7002, "Nie zapisany")
    [overview] = await gw.tg(7001, "/listy")
    assert "Nowości listopada" in overview and "2 pozycje" in overview
    [[button]] = keyboard(gw, 7001)
    assert button == {"text": "➕ Nowości listopada", "callback_data": "lists:nowosci"}
    await gw.update(callback_update(7001, "lists:nowosci"))
    assert "Zapisano Cię na listę „Nowości listopada”" in gw.botapi.texts_to(7001)[-1]
    assert keyboard(gw, 7001)[0][0]["text"] == "✅ Nowości listopada"
    assert await ListSubscription.filter(list_id="nowosci").count() == 1

    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE, SOLARIS)], "a2")
    await gw.drain()
    [news] = list_texts(gw, 7001)
    assert "2 nowe pozycje" in news and "Ferdydurke — Witold Gombrowicz" in news
    assert "Solaris — Stanisław Lem (1961)" in news and "na półce 3" in news
    assert "Lalka" not in news and "Potop" not in news  # the list is not sent again
    # the same news again (the library retries, or repeats itself): no second message
    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE, SOLARIS)], "a3")
    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE, SOLARIS)], "a2")  # a replayed id
    await gw.drain()
    assert len(list_texts(gw, 7001)) == 1
    assert list_texts(gw, 7002) == []  # never to someone who did not subscribe

    # one press unsubscribes; what comes next is not sent
    await gw.update(callback_update(7001, "lists:nowosci"))
    assert "Wypisano Cię z listy" in gw.botapi.texts_to(7001)[-1]
    await post(gw, [nowosci(LALKA, {"title": "Quo vadis"})], "a4")
    await gw.drain()
    assert len(list_texts(gw, 7001)) == 1
    assert not await ListSubscription.all().exists()


async def test_english_and_an_unknown_list(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA)], "e1")
    await gw.linked(7003, "Reader", language="en")
    [overview] = await gw.tg(7003, "/lists")
    assert "Reading lists from the library" in overview and "1 item" in overview
    await gw.update(callback_update(7003, "lists:gone"))
    assert 'There is no list "gone"' in gw.botapi.texts_to(7003)[-1]
    await gw.update(callback_update(7003, "lists:nowosci"))
    await post(gw, [nowosci(LALKA, POTOP)], "e2")
    await gw.drain()
    assert "Nowości listopada</b>: 1 new item" in gw.botapi.texts_to(7003)[-1]


async def test_quiet_hours_hold_the_news_till_morning(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA)], "q1")
    person = await gw.linked(7004, "Nocny marek")
    resp = await gw.client.patch(f"/api/v1/people/{person}", headers=gw.admin,
                                 json={"quiet_start": "22:00", "quiet_end": "07:00"})
    assert resp.status == 200, await resp.text()
    await gw.update(callback_update(7004, "lists:nowosci"))
    gw.clock.set(datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc))  # 23:30 in Milanówek
    await post(gw, [nowosci(LALKA, POTOP)], "q2")
    await gw.drain()
    assert list_texts(gw, 7004) == []
    gw.clock.set(datetime(2026, 11, 26, 6, 5, tzinfo=timezone.utc))  # 7:05
    await gw.drain()
    [news] = list_texts(gw, 7004)
    assert "1 nowa pozycja" in news and "Potop" in news


async def test_subscribing_by_mail_needs_proof(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA)], "m1")
    person = await gw.person("Pani Czytelniczka", email="czyta@example.pl")
    to = {"to": "biblioteka", "sender": "czyta@example.pl"}
    [listing] = await gw.mail(make_mail("listy", "", sender="czyta@example.pl"), **to)
    text = listing.get_body(("plain",)).get_content()
    assert "Nowości listopada (1 pozycja)" in text and "zapisz nowosci" in text
    # not proven (no thread, no DMARC): asked to reply to our message, nothing changes
    [asked] = await gw.mail(make_mail("zapisz nowosci", "", sender="czyta@example.pl"), **to)
    assert asked["Subject"] == "Prosimy o potwierdzenie adresu"
    assert not await ListSubscription.filter(person_id=person).exists()
    # a reply to our listing is proven
    [done] = await gw.mail(make_mail("Re: zapisz nowosci", "", sender="czyta@example.pl",
                                     In_Reply_To=listing["Message-ID"]), **to)
    assert "Zapisaliśmy Cię na listę „Nowości listopada”" in done.get_body(
        ("plain",)).get_content()
    assert await ListSubscription.filter(person_id=person, list_id="nowosci").exists()

    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE)], "m2")
    await gw.drain()
    [news] = [m for m in gw.sent_mail() if "nowe pozycje" in str(m["Subject"])]
    assert news["Subject"] == "Nowości listopada: 2 nowe pozycje"
    body = news.get_body(("plain",)).get_content()
    assert "Potop — Henryk Sienkiewicz" in body and "Lalka" not in body
    # the mail's one-click unsubscribe (RFC 8058) turns the notice type off for mail
    [link] = re.findall(r"<([^>]+)>", news["List-Unsubscribe"])
    resp = await gw.client.post(urlsplit(link).path, data="List-Unsubscribe=One-Click",
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200
    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE, SOLARIS)], "m3")
    await gw.drain()
    assert not [m for m in gw.sent_mail() if "Solaris" in m.get_body(("plain",)).get_content()]
    assert await Outbox.filter(cause="reading-list").count() == 1

    # and out by mail: a proven `wypisz`
    [out] = await gw.mail(make_mail("wypisz nowosci", "", sender="czyta@example.pl",
                                    In_Reply_To=done["Message-ID"]), **to)
    assert "Wypisaliśmy Cię z listy" in out.get_body(("plain",)).get_content()
    assert not await ListSubscription.filter(person_id=person).exists()
    [stranger] = await gw.mail(make_mail("zapisz nowosci", "", sender="obcy@example.com"),
                               to="biblioteka", sender="obcy@example.com")
    assert "Nie znamy tego adresu" in str(stranger["Subject"])


async def test_subscriptions_are_exported_and_erased(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA)], "r1")
    person = await gw.linked(7005, "Do usunięcia")
    await gw.update(callback_update(7005, "lists:nowosci"))
    exported = await rodo.export(person, channels=gw.services.channels)
    assert exported is not None
    [row] = exported["reading_list_subscriptions"]
    assert row["list_id"] == "nowosci"
    await rodo.erase(person, audit.Actor("test", "test"), gw.clock.now(),
                     channels=gw.services.channels, spool_dir=gw.settings.sent_mail_dir)
    assert not await ListSubscription.filter(person_id=person).exists()


async def test_digest_rules_apply_to_the_news(gw: Gateway) -> None:
    await post(gw, [nowosci(LALKA)], "d1")
    person = await gw.linked(7006, "Woli podsumowanie")
    await gw.update(callback_update(7006, "lists:nowosci"))
    [settings] = await gw.tg(7006, "/ustawienia listy dzienny godzina 18")
    assert "Listy lektur z biblioteki: w podsumowaniu dnia o 18:00" in settings
    await post(gw, [nowosci(LALKA, POTOP, FERDYDURKE)], "d2")
    await gw.drain()
    assert list_texts(gw, 7006) == []  # not now: a line of the day's summary
    assert await DigestItem.filter(person_id=person, kind="lists").count() == 1
    gw.clock.set(gw.clock.now().replace(hour=17, minute=1))  # 18:01 in Milanówek
    assert (await run_job(gw.services, "school-digest"))["digests"] == 1
    await gw.drain()
    digest = gw.botapi.texts_to(7006)[-1]
    assert "Nowości listopada: 2 nowe pozycje" in digest, digest


async def test_many_lists_show_the_followed_ones_first(gw: Gateway) -> None:
    await post(gw, [{"id": f"l{n:02d}", "title": f"Lista {n}", "items": [POTOP]}
                    for n in range(51)], "n1")
    await gw.linked(7007, "Dużo list")
    await gw.tg(7007, "/listy")
    shown = [row[0]["callback_data"] for row in keyboard(gw, 7007)]
    assert len(shown) == 50 and "lists:l50" not in shown
    await gw.update(callback_update(7007, "lists:l50"))  # e.g. a button of an older message
    await gw.tg(7007, "/listy")
    shown = [row[0]["text"] for row in keyboard(gw, 7007)]
    assert len(shown) == 50 and shown[0] == "✅ Lista 50"
