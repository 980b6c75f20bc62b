"""The library catalogue over SRU (#20): `/szukaj` in the bot and `szukaj …` to
biblioteka@, against the recorded Polish MARCXML served by tests/doubles/sru.py and
against Debian's yaz-ztest; subject search, paging, and a catalogue that is not
connected, dead or slow."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.config import Settings
from handlers import catalogue
from handlers.catalogue import cql
from store.clock import FrozenClock
from tests.conftest import WEBHOOK_SECRET, Gateway, make_mail
from tests.doubles.botapi import BotApiDouble, callback_update, message_update
from tests.doubles.sru import SruDouble


@pytest.fixture
async def sru() -> AsyncIterator[SruDouble]:
    double = SruDouble()
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    double.url = str(server.make_url("/katalog"))  # type: ignore[attr-defined]
    yield double
    await server.close()


async def gateway(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                  clock: FrozenClock, url: str | None, timeout: float = 4.0) -> Gateway:
    with_catalogue = settings.model_copy(update={"catalogue_sru_url": url,
                                                 "catalogue_timeout": timeout})
    client = await aiohttp_client(create_app(with_catalogue, clock=clock, run_workers=False))
    return Gateway(client, with_catalogue, botapi, clock)


@pytest.fixture
async def cat_gw(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                 clock: FrozenClock, sru: SruDouble) -> Gateway:
    return await gateway(aiohttp_client, settings, botapi, clock, sru.url)  # type: ignore[attr-defined]


def buttons(gw: Gateway, chat: int) -> list[tuple[str, str]]:
    markup = gw.botapi.messages_to(chat)[-1].params.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for row in markup.get("inline_keyboard", [])
            for b in row]


async def press(gw: Gateway, chat: int, data: str) -> list[str]:
    before = len(gw.botapi.texts_to(chat))
    await gw.update(callback_update(chat, data))
    return gw.botapi.texts_to(chat)[before:]


def test_cql_quotes_every_term_and_escapes_what_cql_reserves() -> None:
    assert cql("Lalka") == 'cql.serverChoice all "Lalka"'
    assert cql("autor: Prus tytuł: Lalka") == 'dc.creator all "Prus" and dc.title all "Lalka"'
    assert cql('tytul: "Pan Tadeusz" temat: wojna') == (
        'dc.title = "Pan Tadeusz" and dc.subject all "wojna"')
    assert cql("978-83-240-1234-5") == 'bath.isbn = "9788324012345"'
    # a person cannot leave the quotes nor mask a term: " is a word break, the rest escaped
    assert cql('x" or dc.title=* \\ ?^') == 'cql.serverChoice all "x or dc.title=\\* \\\\ \\?\\^"'
    assert cql('  "" ') is None


async def test_author_search_shows_title_author_year_call_number_and_pages_on(
        cat_gw: Gateway, sru: SruDouble) -> None:
    [answer] = await cat_gw.tg(7001, "/szukaj autor: Sienkiewicz")
    assert sru.queries == ['dc.creator all "Sienkiewicz"']
    assert "6 pozycji" in answer and "pokazuję 1–5" in answer
    assert "<b>Potop</b> — Sienkiewicz, Henryk (2012)" in answer
    assert "sygnatura: 821.162.1-3 SIE" in answer  # 852 $h $i
    # one result a line, its copies indented on the next
    assert "\n1. <b>Potop</b> — Sienkiewicz, Henryk (2012)\n   sygnatura: 821.162.1-3 SIE\n" in answer
    assert "sygnatura: II-4711" in answer  # 949 $a
    assert "W pustyni" not in answer
    labels = dict(buttons(cat_gw, 7001))
    assert labels["następne ▶"] == "kat:6:autor: Sienkiewicz"
    [second] = await press(cat_gw, 7001, "kat:6:autor: Sienkiewicz")
    assert "6. <b>W pustyni i w puszczy</b>" in second and "Potop" not in second
    assert "następne ▶" not in dict(buttons(cat_gw, 7001))


async def test_subjects_are_buttons_that_search_the_subject_index(
        cat_gw: Gateway, sru: SruDouble) -> None:
    await cat_gw.tg(7002, "/katalog Potop")
    data = dict(buttons(cat_gw, 7002))["🔎 Historia Polski — 17 w."]
    assert data == "kat:1:temat:Historia Polski 17 w."
    [answer] = await press(cat_gw, 7002, data)
    assert sru.queries[-1] == 'dc.subject all "Historia Polski 17 w."'
    assert "3 pozycje" in answer
    assert all(t in answer for t in ("Potop", "Ogniem i mieczem", "Pan Wołodyjowski"))
    # every button fits Telegram's 64 bytes, the long heading too (cut at a word)
    await cat_gw.tg(7002, "/szukaj Wołodyjowski")
    long = [d for t, d in buttons(cat_gw, 7002) if "Kamieniec" in t]
    assert long == ["kat:1:temat:Kamieniec Podolski (Ukraina) oblężenie (1672)"]
    assert all(len(d.encode()) <= 64 for _, d in buttons(cat_gw, 7002))


async def test_typed_subject_isbn_availability_and_nothing_found(
        cat_gw: Gateway, sru: SruDouble) -> None:
    [answer] = await cat_gw.tg(7003, '/szukaj temat: "Historia Polski"')
    assert "5 pozycji" in answer and "Boże igrzysko : historia Polski" in answer
    [answer] = await cat_gw.tg(7003, "/search 978-83-240-1234-5")
    assert sru.queries[-1] == 'bath.isbn = "9788324012345"'
    assert "1 pozycja" in answer and "Davies, Norman (2010)" in answer
    [answer] = await cat_gw.tg(7003, "/szukaj tytuł: Lalka")
    assert "sygnatura: 821.162.1-3 PRU · dostępna" in answer  # one of Koha's two copies is in
    [answer] = await cat_gw.tg(7003, "/szukaj Szymborska")
    assert "wypożyczona" in answer  # 952 $q on its only copy
    [answer] = await cat_gw.tg(7003, '/szukaj Lalka" or dc.title=*')
    assert "nie ma nic dla" in answer  # searched as words, not obeyed as CQL
    [answer] = await cat_gw.tg(7003, "/szukaj")
    assert "Napisz, czego szukasz" in answer


async def test_english_reader(cat_gw: Gateway) -> None:
    before = len(cat_gw.botapi.texts_to(7004))
    await cat_gw.update(message_update(7004, "/search autor: Sienkiewicz", language="en"))
    [answer] = cat_gw.botapi.texts_to(7004)[before:]
    assert "Library catalogue" in answer and "6 items" in answer
    assert "next ▶" in dict(buttons(cat_gw, 7004))


async def test_mail_search_with_more_by_replying(cat_gw: Gateway,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalogue, "MAIL_PAGE", 4)
    [answer] = await cat_gw.mail(make_mail("szukaj autor: Sienkiewicz", "dzień dobry",
                                           to="biblioteka@milanowek.example"),
                                 to="biblioteka", sender="czyta@example.pl")
    assert answer["Subject"] == "szukaj autor: Sienkiewicz więcej 5"
    text = answer.get_body(("plain",)).get_content()
    assert "6 pozycji, poniżej 1–4" in text and "tematy: Historia Polski — 17 w." in text
    [more] = await cat_gw.mail(make_mail("Re: szukaj autor: Sienkiewicz więcej 5", "> …",
                                         to="biblioteka@milanowek.example"),
                               to="biblioteka", sender="czyta@example.pl")
    text = more.get_body(("plain",)).get_content()
    assert "5. Krzyżacy" in text and "6. W pustyni i w puszczy" in text and "Potop" not in text
    assert more["Subject"] == "Katalog biblioteki: autor: Sienkiewicz"
    # the first line works as well, and loans still answer as before
    [first_line] = await cat_gw.mail(make_mail("katalog", "szukaj Szymborska\n",
                                               to="biblioteka@milanowek.example"),
                                      to="biblioteka", sender="czyta@example.pl")
    assert "Widok z ziarnkiem piasku" in first_line.get_body(("plain",)).get_content()


async def test_not_connected(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                             clock: FrozenClock) -> None:
    gw = await gateway(aiohttp_client, settings, botapi, clock, None)
    [answer] = await gw.tg(7005, "/szukaj Lalka")
    assert "nie jest jeszcze połączony" in answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_dead_catalogue_gets_a_polite_answer(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock) -> None:
    gw = await gateway(aiohttp_client, settings, botapi, clock,
                       f"http://127.0.0.1:{free_port()}/katalog")
    [answer] = await gw.tg(7006, "/szukaj Lalka")
    assert "teraz nie odpowiada" in answer


async def test_slow_catalogue_answers_in_time_and_others_go_on(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        sru: SruDouble) -> None:
    sru.delay = 30
    gw = await gateway(aiohttp_client, settings, botapi, clock,
                       sru.url, timeout=1.0)  # type: ignore[attr-defined]
    for chat, text in ((7007, "/szukaj Lalka"), (7008, "/pomoc"), (7009, "/szukaj Potop")):
        resp = await gw.client.post("/telegram/webhook", json=message_update(chat, text),
                                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
        assert resp.status == 200
    started = time.monotonic()
    draining = asyncio.create_task(gw.drain())
    await asyncio.sleep(0.3)
    # meanwhile the store is free: the search runs before the inbox's transaction (on
    # SQLite, one connection, a search inside it would hold this write for the timeout)
    writing = time.monotonic()
    await gw.person("Ala Nowak")
    assert time.monotonic() - writing < 0.5 and not draining.done()
    await draining
    assert time.monotonic() - started < 5
    assert "teraz nie odpowiada" in gw.botapi.texts_to(7007)[-1]
    assert "teraz nie odpowiada" in gw.botapi.texts_to(7009)[-1]
    assert "/pomoc" in gw.botapi.texts_to(7008)[-1]


@pytest.fixture
def ztest() -> Any:
    if shutil.which("yaz-ztest") is None:
        pytest.skip("yaz-ztest is not installed (Debian's yaz package; .ci/run installs it)")
    port = free_port()
    server = subprocess.Popen(["yaz-ztest", f"tcp:127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/Default"
    server.terminate()
    server.wait(5)


async def test_yaz_ztest(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                         clock: FrozenClock, ztest: str) -> None:
    gw = await gateway(aiohttp_client, settings, botapi, clock, ztest)
    [answer] = await gw.tg(7010, "/szukaj 3")
    assert "Katalog biblioteki" in answer and "1. <b>" in answer
    assert "następne ▶" in dict(buttons(gw, 7010))


async def test_a_forged_page_number_or_an_endless_query_stops_nothing(
        cat_gw: Gateway, sru: SruDouble) -> None:
    """Review of #20: a forged button `kat:²:x` ("²".isdigit() is true, int("²") raises)
    made the inbox's search step raise before its batch's `try`, so the row stayed pending
    and the supervised inbox failed on it for ever — no channel answered again. Numbers
    are read with the house's one ASCII rule (handlers/text.whole_number); a query longer
    than a person writes is answered with the usage, not sent to the catalogue."""
    for forged in ("kat:²:Prus", "kat:٣:Prus", f"kat:{'9' * 5000}:Prus"[:64]):
        [answer] = await press(cat_gw, 7003, forged)
        assert "Prus" in answer
    searched = len(sru.queries)
    [answer] = await cat_gw.tg(7003, "/szukaj " + "słowo " * 100)
    assert "Napisz, czego szukasz" in answer and len(sru.queries) == searched
    [help_answer] = await cat_gw.tg(7003, "/pomoc")
    assert "/szukaj" in help_answer
