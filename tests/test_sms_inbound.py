"""Issue #19, SMS inbound and delivery truth: the provider's double calls the gateway's
callbacks over real HTTP as SMSAPI would — incoming SMS (STOP, START, STATUS) and
delivery reports — and the outbox, the opt-outs and the person's next channel follow."""

from __future__ import annotations

import email
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import Settings
from handlers import fanout
from handlers.channels import Channel, HookEnv
from sms.inbound import words
from store.clock import FrozenClock
from store.models import OptOut, Outbox, Person, RawInbound
from store.outbox import without_opted_out
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import SmsApiDouble
from tests.doubles.smtp_relay import Sink
from tests.sms import OTHER, PHONE, SECRET, say, sms_gateway

BODY = "W piątek wycieczka do Żyrardowa, zbiórka o 7:45 przed szkołą."


def school_message(key: str) -> fanout.Notice:
    return fanout.Notice(kind="messages", template="school_message", key=key, context={
        "about": {"class_name": "3a"}, "title": "Wycieczka", "body": BODY,
        "sender": "wychowawczyni"})


async def notify(gw: Gateway, person_id: int, key: str) -> None:
    await fanout.fan_out(gw.services, [await Person.get(id=person_id)], school_message(key),
                         gw.clock.now())
    await gw.drain()


async def sms_first(gw: Gateway, name: str = "Halina Wiśniewska", phone: str = PHONE,
                    mail: str = "halina@example.pl") -> int:
    """A parent reached by SMS first and by mail second."""
    person_id = await gw.person(name, ["parent"], phone=phone, email=mail)
    await Person.filter(id=person_id).update(channel_order=["sms", "email"])
    return person_id


def mail_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [email.message_from_bytes(raw, policy=policy.default)
            for _, rcpts, _, raw in sink.received if address in rcpts]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


@pytest.mark.parametrize("text", ["STOP", "Stop.", "stop sms", " STOP! ", "Nie chcę SMS-ów",
                                  "Wypisz mnie", "koniec SMS", "rezygnuję"])
def test_the_ways_people_write_stop(text: str) -> None:
    assert words(text) == ("stop", [], "")


def test_start_status_and_sentences_that_only_begin_like_a_keyword() -> None:
    assert words("Start")[0] == words("START SMS")[0] == words("wznów")[0] == "start"
    assert words("Status um-2026-000123") == ("status", ["um-2026-000123"], "um-2026-000123")
    assert words("nie wiem, kiedy zebranie") == (None, [], "nie wiem, kiedy zebranie")
    assert words("stop the bus at 7") == (None, [], "stop the bus at 7")


@pytest.mark.parametrize("text", ["Nie.", "nie", "Koniec", "Status mojej sprawy?"])
def test_an_answer_to_a_clerk_is_text_not_a_command(text: str) -> None:
    """Review of #19: "Nie." answering a clerk's question was taken for STOP (the answer
    lost, the person's SMS off), and any text beginning with "status" for the command."""
    assert words(text) == (None, [], text)


async def test_stop_once_then_the_next_channel_then_start(
        sms_gw: Gateway, smsapi: SmsApiDouble, relay: tuple[Sink, int]) -> None:
    sink = relay[0]
    person_id = await sms_first(sms_gw)
    await notify(sms_gw, person_id, "msg:before")
    assert [s.message for s in smsapi.to(PHONE)][-1].startswith("Wycieczka")

    # a notice queued for SMS, and before it leaves the person writes STOP
    await fanout.fan_out(sms_gw.services, [await Person.get(id=person_id)],
                         school_message("msg:queued"), sms_gw.clock.now())
    # STOP is confirmed, by SMS, though the number has just stopped; the queued notice
    # is refused by the sender and goes by the person's next channel, mail
    assert await say(sms_gw, smsapi, "Stop.") == [
        "e-Milanówek: koniec SMS-ów na ten numer. Odpisz START, by wrócić."]
    assert await OptOut.filter(channel="sms", address=PHONE).exists()
    refused = await Outbox.get(idempotency_key__startswith="msg:queued", channel="sms")
    assert refused.status == "failed" and "STOP" in refused.last_error
    [mail] = mail_to(sink, "halina@example.pl")
    assert "Wycieczka" in mail["Subject"] + text_of(mail)

    # a second STOP while stopped is not answered: we don't pay to pester
    assert await say(sms_gw, smsapi, "STOP SMS") == []
    # a notice now goes by mail too, and no SMS is paid for
    paid = len(smsapi.sent)
    await notify(sms_gw, person_id, "msg:stopped")
    assert len(smsapi.sent) == paid and len(mail_to(sink, "halina@example.pl")) == 2

    # START is answered, and SMS flow again
    assert await say(sms_gw, smsapi, "start") == [
        "e-Milanówek: SMS-y znów włączone. Wyłączysz je, odpisując STOP."]
    assert not await OptOut.filter(channel="sms", address=PHONE).exists()
    await notify(sms_gw, person_id, "msg:again")
    assert smsapi.to(PHONE)[-1].message.startswith("Wycieczka")
    assert len(mail_to(sink, "halina@example.pl")) == 2


async def test_a_stranger_may_stop_too_and_is_answered_in_polish(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    assert await say(sms_gw, smsapi, "Nie chcę SMS", sender=OTHER) == [
        "e-Milanówek: koniec SMS-ów na ten numer. Odpisz START, by wrócić."]
    assert await OptOut.filter(channel="sms", address=OTHER).exists()


async def test_status_by_sms(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    await sms_first(sms_gw)
    resp = await sms_gw.client.post("/api/v1/cases", json={
        "subject": "Dziura w jezdni", "body": "Na ulicy Kościelnej.",
        "email": "halina@example.pl"})
    assert resp.status == 201, await resp.text()
    number = (await resp.json())["number"]
    [answer] = await say(sms_gw, smsapi, f"STATUS {number.lower()}")
    assert answer == f"Sprawa {number}: przyjęta"
    # review of #19: the answer is the status and the newest entry, in at most two parts
    # (the Telegram history made plain was four, cut to three with the newest lost)
    note = ("Zgłosiliśmy dziurę zarządcy drogi; naprawa jest zaplanowana na przyszły "
            "tydzień, prosimy o cierpliwość i ostrożną jazdę.")
    resp = await sms_gw.client.post(f"/api/v1/cases/{number}/events", headers=sms_gw.admin,
                                    json={"status": "in_progress", "note": note})
    assert resp.status == 201, await resp.text()
    await sms_gw.drain()
    [answer] = await say(sms_gw, smsapi, f"STATUS {number}")
    assert answer.startswith(f"Sprawa {number}: w toku. ") and "Zgłosiliśmy dziurę" in answer
    assert smsapi.to(PHONE)[-1].parts <= 2
    # another number learns nothing of it
    [refused] = await say(sms_gw, smsapi, f"status {number}", sender=OTHER)
    assert refused.startswith(f"Nie możemy podać informacji o sprawie {number}")


async def test_an_undelivered_report_moves_the_notice_to_mail(
        sms_gw: Gateway, smsapi: SmsApiDouble, relay: tuple[Sink, int]) -> None:
    sink = relay[0]
    person_id = await sms_first(sms_gw)
    await notify(sms_gw, person_id, "msg:lost")
    [sms] = smsapi.to(PHONE)
    row = await Outbox.get(channel="sms")
    assert sms.idx == str(row.id) and row.status == "sent"
    assert mail_to(sink, "halina@example.pl") == []

    assert await smsapi.report((sms, 405)) == (200, "OK")
    await sms_gw.drain()
    row = await Outbox.get(id=row.id)
    assert row.status == "bounced" and "UNDELIVERED" in row.last_error
    [mail] = mail_to(sink, "halina@example.pl")
    assert "Wycieczka" in mail["Subject"] + text_of(mail)

    # the same report again (SMSAPI retries) changes nothing and mails nothing more
    assert await smsapi.report((sms, 405), method="POST") == (200, "OK")
    await sms_gw.drain()
    assert len(mail_to(sink, "halina@example.pl")) == 1
    assert await Outbox.filter(channel="email").count() == 1


async def test_delivered_and_the_reports_that_say_nothing_new(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    first = await sms_first(sms_gw)
    second = await sms_first(sms_gw, "Jan Kowalski", OTHER, "jan@example.pl")
    await notify(sms_gw, first, "msg:one")
    await notify(sms_gw, second, "msg:two")
    [one], [two] = smsapi.to(PHONE), smsapi.to(OTHER)
    sms_gw.clock.advance(seconds=40)
    # one call, two reports: QUEUE says nothing new, DELIVERED is the truth
    assert await smsapi.report((one, 409), (two, "404"), method="POST") == (200, "OK")
    row_one, row_two = await Outbox.get(id=int(one.idx or 0)), await Outbox.get(id=int(two.idx or 0))
    assert row_one.status == "sent" and row_one.delivered_at is None
    assert row_two.status == "delivered" and row_two.delivered_at == sms_gw.clock.now()
    # a late UNDELIVERED does not undo a delivery; nothing falls back
    assert await smsapi.report((two, 405)) == (200, "OK")
    assert (await Outbox.get(id=row_two.id)).status == "delivered"
    assert await Outbox.filter(channel="email").count() == 0
    # a report for a row of another channel, or for no row at all, is answered and ignored
    await sms_gw.person("Ola Nowak", email="ola@example.pl")
    mail_row = await Outbox.create(idempotency_key="mail:x", channel="email",
                                   recipient="ola@example.pl", payload={}, status="sent",
                                   next_attempt_at=sms_gw.clock.now(),
                                   created_at=sms_gw.clock.now())
    foreign, unknown = replace(one, idx=str(mail_row.id)), replace(one, idx="987654321")
    assert await smsapi.report((foreign, 404), (unknown, 405)) == (200, "OK")
    assert (await Outbox.get(id=mail_row.id)).status == "sent"


async def test_a_duplicate_incoming_sms_is_stored_and_answered_once(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    assert await smsapi.incoming(PHONE, "START", msg_id="IN-42") == (200, "OK")
    assert await smsapi.incoming(PHONE, "START", msg_id="IN-42") == (200, "OK")
    [row] = await RawInbound.filter(channel="sms")
    assert (row.external_id, row.status) == ("IN-42", "pending")  # stored before OK
    await sms_gw.drain()
    assert len(smsapi.to(PHONE)) == 1


async def test_a_wrong_secret_is_not_found_and_guessing_is_slowed(
        sms_gw: Gateway) -> None:
    wrong = "/hooks/sms/smsapi/not-the-secret-000000/incoming"
    form = {"sms_from": "48500100200", "sms_text": "STOP", "MsgId": "X1"}
    resp = await sms_gw.client.post(wrong, data=form)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    for _ in range(9):
        await sms_gw.client.post(wrong, data=form)
    # a client guessing the secret is slowed down before its guesses are looked at
    resp = await sms_gw.client.post(wrong, data=form)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    resp = await sms_gw.client.post(f"/hooks/sms/smsapi/{SECRET}/incoming", data=form)
    assert resp.status == 429
    assert not await RawInbound.exists()


@pytest.mark.parametrize("more,status,code", [
    ({"sms_callback_networks": "192.0.2.0/24"}, 403, "forbidden"),  # only the provider's
    ({"sms_callback_secret": None}, 503, "not_configured"),  # no secret: the callbacks are off
])
async def test_callbacks_from_elsewhere_or_without_a_secret_are_refused(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
        clock: FrozenClock, smsapi: SmsApiDouble, more: dict[str, Any], status: int,
        code: str) -> None:
    await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi, **more)
    answer, body = await smsapi.incoming(PHONE, "STOP")
    assert answer == status and f'"code": "{code}"' in body
    answer, body = await smsapi.report(*[])
    assert answer == status
    assert not await RawInbound.exists()


async def test_oversized_and_garbage_input_is_refused_and_nothing_stored(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    url = f"/hooks/sms/smsapi/{SECRET}/incoming"
    form = "sms_from=48500100200&MsgId=G1&sms_text="
    cases: list[tuple[bytes, int, str]] = [
        (b"sms_text=" + b"a" * 300_000, 413, ""),
        ((form + "za\xbf\xf3\xb3").encode("latin-1"), 400, "form"),  # not UTF-8
        ((form + "x" * 2001).encode(), 400, "sms_text"),
        (b"sms_text=hello&MsgId=G2", 400, "sms_from"),
        ((form + "a&sms_from=48600300400").encode(), 400, "sms_from"),  # given twice
        (b"&".join(b"f%d=1" % n for n in range(100)), 400, "form"),
    ]
    for body, status, named in cases:
        resp = await sms_gw.client.post(url, data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == status, (body[:60], await resp.text())
        assert named in (await resp.json())["error"].get("field", "")
    reports = f"/hooks/sms/smsapi/{SECRET}/reports"
    resp = await sms_gw.client.get(reports, params={"MsgId": "a,b", "status": "404,405",
                                                    "idx": "1"})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "idx"
    assert not await RawInbound.exists()


async def test_a_channels_callbacks_are_mounted_and_described(
        aiohttp_client: Any, settings: Settings, clock: FrozenClock) -> None:
    """Any channel's callbacks: registered with the channel, mounted under its name."""
    def callbacks(env: HookEnv) -> list[web.RouteDef]:
        async def ping(request: web.Request) -> web.Response:
            """The pigeon loft rings the bell."""
            return web.Response(text=f"{env.client_address(request)} {env.max_bytes}")
        return [web.post("/loft/{bell}", ping)]

    pigeon = Channel(name="pigeon", read=lambda row, ctx: (None, "no"), outgoing=lambda: None,
                     templates=("telegram",), callbacks=callbacks)
    client = await aiohttp_client(create_app(settings, clock=clock, run_workers=False,
                                             channels=[pigeon]))
    resp = await client.post("/hooks/pigeon/loft/1")
    assert (resp.status, await resp.text()) == (200, f"127.0.0.1 {settings.hook_max_bytes}")
    document = await (await client.get("/api/openapi.json")).json()
    assert document["paths"]["/hooks/pigeon/loft/{bell}"]["post"]["summary"] == \
        "The pigeon loft rings the bell."


async def test_fan_out_may_skip_opted_out_addresses(sms_gw: Gateway) -> None:
    await OptOut.create(channel="sms", address=PHONE, since=sms_gw.clock.now())
    addresses = {1: [("sms", PHONE), ("email", "a@example.pl")], 2: [("sms", OTHER)]}
    assert await without_opted_out(addresses) == {1: [("email", "a@example.pl")],
                                                  2: [("sms", OTHER)]}


async def test_after_stop_a_notice_goes_straight_to_the_next_channel(
        sms_gw: Gateway, smsapi: SmsApiDouble, relay: tuple[Sink, int]) -> None:
    """Review of #19: the fan-out still made the notice's first row an SMS for a number
    that had said STOP, refused by the sender a moment later; now the opted-out address
    is left out when the targets are chosen, and the row is mail from the start."""
    person_id = await sms_first(sms_gw)
    await say(sms_gw, smsapi, "STOP")
    await notify(sms_gw, person_id, "msg:after-stop")
    rows = await Outbox.filter(idempotency_key__startswith="msg:after-stop")
    assert [row.channel for row in rows] == ["email"]
    assert len(mail_to(relay[0], "halina@example.pl")) == 1


async def test_an_opt_out_is_in_the_export_and_outlives_the_erasure(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """Review of #19: a number's STOP was personal data missing from the person's export;
    the erasure keeps it (a suppression list: erasing it would let SMS start again), and
    the export and README say so."""
    from handlers import audit, rodo

    person_id = await sms_first(sms_gw)
    await Person.filter(id=person_id).update(plain_letters=True)
    await say(sms_gw, smsapi, "STOP")
    channels = sms_gw.services.channels
    exported = await rodo.export(person_id, channels=channels)
    assert exported is not None
    assert [(o["channel"], o["address"]) for o in exported["opt_outs"]] == [("sms", PHONE)]
    assert exported["person"]["plain_letters"] is True
    await rodo.erase(person_id, audit.Actor("test", "cli"), sms_gw.clock.now(),
                     channels=channels)
    assert await OptOut.filter(channel="sms", address=PHONE).exists()


async def test_a_report_faster_than_our_own_mark_is_asked_again(
        sms_gw: Gateway, smsapi: SmsApiDouble, relay: tuple[Sink, int]) -> None:
    """Review of #19: a report for a row still `sending` (the report came before our own
    mark of the send) was answered OK and ignored, so SMSAPI never repeated it and an
    UNDELIVERED message never moved to the next channel. Now it is answered 503: the
    provider asks again, and the report then finds the row sent."""
    person_id = await sms_first(sms_gw)
    await notify(sms_gw, person_id, "msg:early")
    [sms] = smsapi.to(PHONE)
    row = await Outbox.get(channel="sms")
    await Outbox.filter(id=row.id).update(status="sending")  # our mark not yet written
    status, _ = await smsapi.report((sms, 405))
    assert status == 503
    assert (await Outbox.get(id=row.id)).status == "sending"
    await Outbox.filter(id=row.id).update(status="sent")
    assert await smsapi.report((sms, 405)) == (200, "OK")
    await sms_gw.drain()
    assert (await Outbox.get(id=row.id)).status == "bounced"
    assert len(mail_to(relay[0], "halina@example.pl")) == 1


async def test_a_message_whose_answer_was_lost_is_not_sent_again(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """Review of #19: SMSAPI took a message but its answer was lost (a 502 from a proxy, a
    timeout): the row was retried and the person paid for twice. The sender asks SMSAPI to
    refuse an `idx` it has sent (`check_idx=1`), and takes that refusal for "sent"."""
    person_id = await sms_first(sms_gw)
    smsapi.lose_answer_next()
    await notify(sms_gw, person_id, "msg:lost-answer")
    row = await Outbox.get(channel="sms")
    assert row.status == "pending" and len(smsapi.sent) == 1  # it went; we could not know
    sms_gw.clock.advance(seconds=30)
    await sms_gw.drain()
    assert len(smsapi.to(PHONE)) == 1
    assert (await Outbox.get(id=row.id)).status == "sent"
