"""Issue #19, "every channel tells the truth": a blocked bot or a mailbox that does not
exist is remembered as a failing address (whatever the channel), so later notices go
straight to the next channel; a message from the chat lifts the mark; the console's
person page shows each address's health and last delivery, in Polish; an announcement's
page counts delivered, sent, bounced and failed copies, each person once; /metrics
counts the outbox's rows by channel and state.

Everything runs through the real gateway: the Bot API double answering 403 over HTTP,
an SMTP relay double refusing at RCPT, the real database.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.app import create_app
from gateway.config import Settings
from gateway.jobs import run_job
from handlers import fanout
from store import outbox
from store.clock import FrozenClock
from store.models import Identity, OptOut, Outbox, Person
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import SmsApiDouble
from tests.doubles.smtp_relay import Sink
from tests.panel import sign_in, staff_member
from tests.sms import PHONE, say, sms_gateway
from tests.test_sms_inbound import notify, sms_first

BLOCKED = "Forbidden: bot was blocked by the user"


async def notice(gw: Gateway, person_id: int, n: int, *, urgent: bool = True) -> str:
    """A school message to one person, through the one fan-out; returns its key."""
    key = f"msg:truth-{n}"
    person = await Person.get(id=person_id)
    await fanout.fan_out(gw.services, [person], fanout.Notice(
        kind="messages", template="school_message", key=key, urgent=urgent,
        context={"about": {"class_name": "3a"}, "title": f"Wycieczka {n}",
                 "body": "W piątek.", "sender": "wychowawczyni"}), gw.clock.now())
    return key


async def person_page(gw: Gateway, client: TestClient, person_id: int) -> str:
    resp = await client.get(f"/panel/ludzie/{person_id}")
    assert resp.status == 200
    return await resp.text()


def row_of(page: str, channel_label: str) -> str:
    """The person page's table row of one channel, tags stripped."""
    for row in re.findall(r"<tr class=\"kanal-[a-z]+\">(.*?)</tr>", page, re.S):
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        if text.startswith(channel_label):
            return text
    raise AssertionError(f"no row for {channel_label}: {page[page.find('kanaly'):][:1500]}")


async def test_a_blocked_bot_is_remembered_shown_and_lifted_by_a_message(gw: Gateway) -> None:
    await staff_member(gw, "admin@milanowek.example", ["admin"], [], name="Administratorka")
    ewa = await gw.linked(7101, "Ewa Nowak", ["parent"], email="ewa@example.org")
    await gw.tg(7101, "/pomoc")  # she has used the bot: Telegram is her last channel
    assert (await Person.get(id=ewa)).last_channel == "telegram"
    gw.botapi.fail_next(403, BLOCKED)
    first = await notice(gw, ewa, 1)
    await gw.drain()

    # the notice arrived by mail, and the chat is remembered as failing, and why
    assert [m["To"] for m in gw.sent_mail()] == ["ewa@example.org"]
    chat = await Identity.get(person_id=ewa, channel="telegram")
    assert chat.failing_since == gw.clock.now() and chat.failing_reason == "blocked"
    assert (await Outbox.get(idempotency_key__startswith=first, channel="telegram")).status \
        == "failed"

    # the next notice goes straight to mail: no row, no attempt on Telegram
    telegram_before = len(gw.botapi.sent)
    gw.clock.advance(minutes=5)
    second = await notice(gw, ewa, 2)
    await gw.drain()
    assert await Outbox.filter(cause=second).values_list("channel", "status") == [
        ("email", "sent")]
    assert len(gw.botapi.sent) == telegram_before
    assert len(gw.sent_mail()) == 2

    # the console says so, in words a clerk understands, with each last delivery
    client = await sign_in(gw, "admin@milanowek.example")
    page = await person_page(gw, client, ewa)
    telegram = row_of(page, "Telegram")
    assert "nie działa od" in telegram and "odbiorca zablokował bota" in telegram
    assert "Forbidden" not in page
    assert "nieudane" in telegram  # its last delivery: the first notice, failed
    mail = row_of(page, "e-mail")
    assert "działa" in mail and "wysłano" in mail and "nie działa" not in mail
    english = await (await client.get(f"/panel/ludzie/{ewa}?lang=en")).text()
    assert "the person blocked the bot" in english

    # Ewa unblocks the bot and writes to it: the mark is lifted, Telegram is first again
    await gw.tg(7101, "/pomoc")
    chat = await Identity.get(person_id=ewa, channel="telegram")
    assert chat.failing_since is None and chat.failing_reason is None
    third = await notice(gw, ewa, 3)
    await gw.drain()
    assert await Outbox.filter(cause=third).values_list("channel", "status") == [
        ("telegram", "sent")]
    assert "Wycieczka 3" in gw.botapi.texts_to(7101)[-1]
    again = await (await client.get(f"/panel/ludzie/{ewa}?lang=pl")).text()
    assert "działa" in row_of(again, "Telegram") and "nie działa" not in again


async def test_a_refused_message_is_not_a_failing_chat(gw: Gateway) -> None:
    """A 400 about the message (too long, bad HTML) fails that message only."""
    adam = await gw.linked(7102, "Adam Nowak", email="adam@example.org")
    gw.botapi.fail_next(400, "Bad Request: message is too long")
    await notice(gw, adam, 4)
    await gw.drain()
    assert [m["To"] for m in gw.sent_mail()] == ["adam@example.org"]  # it fell back
    assert (await Identity.get(person_id=adam, channel="telegram")).failing_since is None


async def test_a_deleted_account_moves_what_waits_for_it_on(gw: Gateway) -> None:
    """A notice held for the morning waits for the chat; when an urgent one finds the
    account deleted, the held one fails on to mail at once (for the morning too)."""
    ola = await gw.linked(7103, "Ola Nowak", email="ola@example.org")
    evening = datetime(2026, 11, 25, 21, 30, tzinfo=timezone.utc)  # 22:30 in Milanówek
    gw.clock.advance(seconds=(evening - gw.clock.now()).total_seconds())
    held = await notice(gw, ola, 5, urgent=False)
    await gw.drain()
    assert await Outbox.filter(cause=held).values_list("channel", "status") == [
        ("telegram", "pending")]
    gw.botapi.fail_next(403, "Forbidden: user is deactivated")
    await notice(gw, ola, 6)
    await gw.drain()
    assert await Outbox.filter(cause=held).order_by("id").values_list("channel", "status") == [
        ("telegram", "failed"), ("email", "pending")]
    chat = await Identity.get(person_id=ola, channel="telegram")
    assert chat.failing_reason == "deactivated"


class RefusingRelay(Sink):
    """The relay double, refusing some recipients at RCPT with a scripted answer."""

    def __init__(self, refusals: dict[str, str]) -> None:
        super().__init__()
        self.refusals = refusals

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refusals:
            return self.refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
async def refusing(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                   clock: Any) -> AsyncIterator[tuple[Gateway, RefusingRelay]]:
    relay = RefusingRelay({"nikt@example.org": "550 5.1.1 <nikt@example.org>: no such user",
                           "obcy@example.org": "550 5.7.1 Relaying denied"})
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(relay),
                                                            "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    relayed = settings.model_copy(update={"smtp_relay": f"127.0.0.1:{port}"})
    client = await aiohttp_client(create_app(relayed, clock=clock, run_workers=False))
    yield Gateway(client, relayed, botapi, clock), relay
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(("address", "failing"), [("nikt@example.org", "mailbox_unknown"),
                                                  ("obcy@example.org", None)])
async def test_a_mailbox_refused_at_rcpt_fails_but_a_relay_refusal_does_not(
        refusing: tuple[Gateway, RefusingRelay], address: str, failing: str | None) -> None:
    gw, relay = refusing
    parent = await gw.linked(7104, "Jan Rodzic", ["parent"], email=address)
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"channel_order": ["email", "telegram"]})
    assert resp.status == 200, await resp.text()
    await notice(gw, parent, 6)
    await gw.drain()
    # the notice went on by Telegram either way
    assert "Wycieczka 6" in gw.botapi.texts_to(7104)[-1]
    assert relay.received == []
    assert (await Identity.get(person_id=parent, channel="email")).failing_reason == failing


async def unit_of(gw: Gateway, people: int) -> list[int]:
    """A secretary (mail only) and `people` teachers (Telegram first, and mail)."""
    staff = await staff_member(gw, "ogloszenia@milanowek.example", ["staff", "admin"],
                               ["szkola-2"], name="Sekretariat")
    return [staff] + [await gw.linked(7200 + n, f"Nauczyciel {n}", ["staff"],
                                      units=["szkola-2"], email=f"n{n}@example.org")
                      for n in range(people)]


async def announce(gw: Gateway, title: str) -> int:
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": title, "body": "W czwartek.", "audience": {"units": ["szkola-2"]}})
    assert resp.status == 202, await resp.text()
    await run_job(gw.services, "scheduled-announcements")  # the publisher's work
    return int((await resp.json())["id"])


async def test_the_announcement_page_counts_each_state_once_per_person(gw: Gateway) -> None:
    await unit_of(gw, 4)
    ann = await announce(gw, "Rada pedagogiczna")
    gw.botapi.fail_next(403, BLOCKED)  # someone's bot is blocked: mailed instead
    await gw.drain()
    rows = await Outbox.filter(cause=f"ann:{ann}").order_by("id")
    telegram = [r for r in rows if r.channel == "telegram" and r.status == "sent"]
    # one copy confirmed delivered, as a channel's delivery report records it (SMS's)
    assert await outbox.mark_delivered(telegram[0].id, "telegram", gw.clock.now())
    # the mail sent instead of the blocked bot comes back: bounced, with nowhere left
    [mailed] = [r for r in rows if r.channel == "email" and ">fb:" in r.idempotency_key]
    gw.clock.advance(minutes=1)
    assert await outbox.mark_bounced(mailed, gw.clock.now(), "bounced: 5.1.1") is None

    resp = await gw.client.get(f"/api/v1/announcements/{ann}", headers=gw.admin)
    stats = await resp.json()
    # the API's `sent` is every copy that left, the one delivered among them
    assert {k: stats[k] for k in ("recipients", "delivered", "sent", "bounced", "failed",
                                  "waiting")} == {"recipients": 5, "delivered": 1, "sent": 4,
                                                  "bounced": 1, "failed": 0, "waiting": 0}
    assert stats["channels"]["telegram"] == {"delivered": 1, "sent": 2, "bounced": 0,
                                             "failed": 1, "waiting": 0, "cancelled": 0}
    assert stats["channels"]["email"]["bounced"] == 1
    assert [p["id"] for p in stats["failed_recipients"]] == [mailed.person_id]

    client = await sign_in(gw, "ogloszenia@milanowek.example")
    page = await (await client.get(f"/panel/ogloszenia/{ann}")).text()
    counted = {name: int(n) for name, n in re.findall(r'id="licznik-([a-z]+)">(\d+)<', page)}
    assert counted == {"odbiorcy": 5, "kolejka": 0, "dostarczone": 1, "wyslane": 3,
                       "odbite": 1, "nieudane": 0, "potwierdzone": 0}
    assert "Ogłoszenie wyszło do 4 z 5 osób, w tym 1 z potwierdzonym doręczeniem." in page
    found = re.search(r'<tr id="kanal-telegram">(.*?)</tr>', page, re.S)
    assert found and re.sub(r"<[^>]+>", " ", found.group(1)).split() == [
        "Telegram", "1", "2", "0", "1", "0"]


async def test_the_apis_sent_does_not_fall_as_delivery_reports_arrive(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        smsapi: SmsApiDouble) -> None:  # noqa: F811 - the fixture imported above
    """`GET /api/v1/announcements/{id}`: `sent` is every copy that left the gateway
    (INTERFACES.md), so an SMS delivery report moves a copy into `delivered` without
    taking it out of `sent`; the console keeps its finer split."""
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    for n, number in enumerate((PHONE, "+48600300400")):  # SMS their only channel
        await gw.person(f"Woźny {n}", ["staff"], units=["szkola-2"], phone=number)
    ann = await announce(gw, "Rada pedagogiczna")
    await gw.drain()

    async def counts() -> tuple[int, int, int]:
        resp = await gw.client.get(f"/api/v1/announcements/{ann}", headers=gw.admin)
        stats = await resp.json()
        return stats["recipients"], stats["sent"], stats["delivered"]

    assert await counts() == (2, 2, 0)
    [first] = smsapi.to(PHONE)
    assert await smsapi.report((first, 404)) == (200, "OK")  # DELIVERED
    assert await counts() == (2, 2, 1)


async def test_unreachable_people_are_counted_with_polish_plurals(gw: Gateway) -> None:
    people = await unit_of(gw, 2)
    await Identity.filter(person_id__in=people[1:]).update(failing_since=gw.clock.now(),
                                                           failing_reason="undelivered")
    ann = await announce(gw, "Nikt nie odbierze")
    await gw.drain()
    client = await sign_in(gw, "ogloszenia@milanowek.example")
    page = await (await client.get(f"/panel/ogloszenia/{ann}")).text()
    assert "Ogłoszenie wyszło do 1 z 3 osób." in page
    assert "2 osoby nie mają żadnego działającego kanału." in page
    assert re.search(r'id="licznik-nieudane">2<', page)
    english = await (await client.get(f"/panel/ogloszenia/{ann}?lang=en")).text()
    assert "2 people have no working channel." in english


async def test_a_stopped_address_is_shown_as_stopped(gw: Gateway) -> None:
    await staff_member(gw, "admin@milanowek.example", ["admin"], [], name="Administratorka")
    jan = await gw.person("Jan Bez Smartfona", ["citizen"], email="jan@example.org")
    now = gw.clock.now()
    await OptOut.create(channel="email", address="jan@example.org", since=now)
    client = await sign_in(gw, "admin@milanowek.example")
    row = row_of(await person_page(gw, client, jan), "e-mail")
    assert "wyłączony od" in row and "odbiorca wypisał się (STOP)" in row
    assert "jeszcze nic" in row


async def test_metrics_count_rows_by_channel_and_state(gw: Gateway) -> None:
    now = gw.clock.now()
    jan = await gw.person("Jan Bez Smartfona", ["citizen"], email="jan@example.org")
    await notice(gw, jan, 7)
    await gw.drain()
    await Outbox.create(idempotency_key="m1", channel="email", recipient="jan@example.org",
                        payload={}, status="bounced", next_attempt_at=now, created_at=now)
    text = await (await gw.client.get("/metrics")).text()
    assert 'emil_outbox_rows{channel="email",state="bounced"} 1.0' in text
    assert 'emil_outbox_rows{channel="email",state="sent"} 1.0' in text
    # recounted once a minute (it reads the whole outbox): then gone, not stuck at 1
    await Outbox.filter(idempotency_key="m1").delete()
    text = await (await gw.client.get("/metrics")).text()
    assert 'emil_outbox_rows{channel="email",state="bounced"} 1.0' in text
    gw.clock.advance(minutes=1)
    text = await (await gw.client.get("/metrics")).text()
    assert 'state="bounced"' not in text


@pytest.fixture
async def sms_gw(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: Any,
                 smsapi: SmsApiDouble) -> Gateway:  # noqa: F811
    """SMS with its callbacks on; mail spooled (where the sign-in link is read)."""
    return await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)


async def test_the_person_page_over_sms_delivered_then_stopped(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:  # noqa: F811
    """Through the SMSAPI double: a delivery report shows as the last delivery; the
    number's STOP shows the channel stopped, and why."""
    await staff_member(sms_gw, "admin@milanowek.example", ["admin"], [], name="Administratorka")
    halina = await sms_first(sms_gw)
    await notify(sms_gw, halina, "msg:truth-sms")
    [sms] = smsapi.to(PHONE)
    sms_gw.clock.advance(seconds=40)
    assert await smsapi.report((sms, 404)) == (200, "OK")  # DELIVERED
    client = await sign_in(sms_gw, "admin@milanowek.example")
    row = row_of(await person_page(sms_gw, client, halina), "SMS")
    assert "działa" in row and "dostarczono, 25.11.2026, 10:00" in row
    await say(sms_gw, smsapi, "STOP")
    row = row_of(await person_page(sms_gw, client, halina), "SMS")
    assert "wyłączony od" in row and "odbiorca wypisał się (STOP)" in row
