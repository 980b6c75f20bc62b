"""Issue #19, SMS (outbound): a channel registered when its token is set, sending through
SMSAPI.pl's HTTP API — here its double, tests/doubles/smsapi.py, over real HTTP on
loopback — with Polish text counted in parts as the provider charges it, the fallback of
a person whose Telegram is blocked, and the provider's refusals mapped to the outbox's
outcomes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway import imports
from gateway.app import build_channels, create_app
from gateway.config import Settings
from handlers import fanout
from handlers.render import Renderer
from sms import channel as sms_channel
from sms.encoding import count, transliterate
from store.clock import FrozenClock
from store.models import Identity, Outbox, Person
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import TOKEN, SmsApiDouble

PHONE = "+48500100200"
OTHER = "+48600300400"
#: a school message whose Polish letters make it UCS-2, and long enough for two parts
BODY = "W piątek wycieczka do Żyrardowa, zbiórka o 7:45 przed szkołą."
SMS_TEXT = f"Wycieczka (klasa 3a): {BODY} - wychowawczyni"


@pytest.fixture
async def sms_gw(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
                 clock: FrozenClock, smsapi: SmsApiDouble) -> Gateway:
    with_sms = settings.model_copy(update={"sms_token": TOKEN, "sms_api_url": smsapi.url,
                                           "sms_sender": "Milanowek", "sms_rate": 1000.0})
    app = create_app(with_sms, clock=clock, run_workers=False)
    return Gateway(await aiohttp_client(app), with_sms, botapi, clock)


def school_message(key: str, body: str = BODY) -> fanout.Notice:
    return fanout.Notice(kind="messages", template="school_message", key=key, context={
        "about": {"class_name": "3a"}, "title": "Wycieczka", "body": body,
        "sender": "wychowawczyni"})


async def notify(gw: Gateway, person_ids: list[int], notice: fanout.Notice) -> None:
    people = [await Person.get(id=pid) for pid in person_ids]
    await fanout.fan_out(gw.services, people, notice, gw.clock.now())
    await gw.drain()


def test_sms_is_registered_last_and_only_with_a_token(settings: Settings) -> None:
    assert build_channels(settings).names == ("telegram", "email")
    with_sms = settings.model_copy(update={"sms_token": TOKEN})
    assert build_channels(with_sms).names == ("telegram", "email", "sms")


def test_the_sender_name_is_checked(settings: Settings) -> None:
    for bad in ("e-Milanówek", "Milanowek123", ""):
        with pytest.raises(ValidationError, match="sms_sender"):
            Settings(_env_file=None, sms_sender=bad)  # type: ignore[call-arg]
    assert Settings(_env_file=None, sms_sender="EMilanowek").sms_sender == "EMilanowek"  # type: ignore[call-arg]


async def test_a_phone_is_an_identity_in_e164(sms_gw: Gateway) -> None:
    person_id = await sms_gw.person("Halina Wiśniewska", phone="500 100 200")
    identity = await Identity.get(person_id=person_id)
    assert (identity.channel, identity.address) == ("sms", PHONE)
    resp = await sms_gw.client.post("/api/v1/people", headers=sms_gw.admin, json={
        "name": "Zły Numer", "roles": ["citizen"], "phone": "12 345"})
    assert resp.status == 400 and "phone" in await resp.text()


async def test_without_sms_a_phone_is_refused(gw: Gateway) -> None:
    # without the SMS channel a phone cannot be taken: it says so instead of dropping it
    resp = await gw.client.post("/api/v1/people", headers=gw.admin, json={
        "name": "Halina Wiśniewska", "roles": ["citizen"], "phone": "500 100 200"})
    assert resp.status == 400 and "SMS" in await resp.text()


async def test_a_notice_to_a_phone_arrives_as_sms_counted_in_ucs2_parts(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    person_id = await sms_gw.person("Halina Wiśniewska", ["parent"], phone=PHONE)
    await notify(sms_gw, [person_id], school_message("msg:sms"))
    [sms] = smsapi.to(PHONE)
    row = await Outbox.get(idempotency_key__startswith="msg:sms")
    assert (row.channel, row.recipient, row.status) == ("sms", PHONE, "sent")
    assert sms.idx == str(row.id) and sms.sender == "Milanowek"
    assert sms.message == SMS_TEXT  # school_message.sms.j2: short, plain, Polish letters kept
    # one "ą" makes the whole message UCS-2: 70 code units a single SMS, 67 a part
    assert sms.encoding == "ucs2" and count(sms.message).encoding == "ucs2"
    assert 70 < count(sms.message).units <= 134
    assert sms.parts == count(sms.message).parts == 2
    # the same words "bez polskich znaków" would have been one part
    assert count(transliterate(sms.message)) == count(transliterate(SMS_TEXT))
    assert count(transliterate(SMS_TEXT)).parts == 1


async def test_a_long_notice_is_cut_to_the_parts_allowed(sms_gw: Gateway, smsapi: SmsApiDouble
                                                         ) -> None:
    person_id = await sms_gw.person("Halina Wiśniewska", ["parent"], phone=PHONE)
    long_body = " ".join([BODY] * 8)
    await notify(sms_gw, [person_id], school_message("msg:long", long_body))
    [sms] = smsapi.to(PHONE)
    assert sms.parts == sms_gw.settings.sms_max_parts == 3
    # no link to the full text in a school message's context: an ellipsis ends it
    kept = sms.message.removeprefix("Wycieczka (klasa 3a): ").removesuffix("…")
    assert sms.message.endswith("…") and long_body.startswith(kept)
    assert long_body[len(kept)] == " "  # cut between two words, nothing invented


def test_without_an_sms_template_the_telegram_one_is_read_as_plain_text() -> None:
    """The documented fallback: `announcement` has no SMS form; its Telegram HTML loses
    its tags, entities are decoded, and a link keeps its address."""
    renderer = Renderer(ZoneInfo("Europe/Warsaw"), "https://e.milanowek.pl")
    text = sms_channel.render(renderer, "announcement", "pl", {"announcement": {
        "priority": "urgent", "title": "Awaria wodociągu <Kościelna & Wysoka>",
        "body": "Woda beczkowozem przy szkole."}, "link": "https://e.milanowek.pl/a/7"})
    assert text == {"text": "🚨 📢 Awaria wodociągu <Kościelna & Wysoka>\n\n"
                            "Woda beczkowozem przy szkole.",
                    "link": "https://e.milanowek.pl/a/7"}


async def test_a_blocked_bot_falls_back_to_sms(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    # SMS is paid: a notice falls back to it where the person put it in their order (#19)
    person_id = await sms_gw.linked(4191, "Halina Wiśniewska", ["parent"], phone=PHONE)
    await Person.filter(id=person_id).update(channel_order=["telegram", "sms"])
    await notify(sms_gw, [person_id], school_message("msg:first"))
    assert "Wycieczka" in sms_gw.botapi.texts_to(4191)[-1]
    assert smsapi.sent == []  # Telegram first: SMS is the last resort
    sms_gw.botapi.fail_next(403, "Forbidden: bot was blocked by the user")
    await notify(sms_gw, [person_id], school_message("msg:blocked"))
    [sms] = smsapi.to(PHONE)
    assert "Wycieczka" in sms.message
    row = await Outbox.get(idempotency_key__startswith="msg:blocked", channel="sms")
    assert (row.channel, row.status) == ("sms", "sent")


async def test_a_permanent_refusal_fails_the_row_and_the_next_goes(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    first = await sms_gw.person("Halina Wiśniewska", phone=PHONE)
    second = await sms_gw.person("Jan Kowalski", phone=OTHER)
    smsapi.fail_next(code=13, message="No correct phone numbers")
    await notify(sms_gw, [first, second], school_message("msg:refused"))
    rows = {r.recipient: r for r in await Outbox.filter(channel="sms")}
    failed = [r for r in rows.values() if r.status == "failed"]
    sent = [r for r in rows.values() if r.status == "sent"]
    assert len(failed) == len(sent) == 1
    assert "SMSAPI error 13" in failed[0].last_error
    assert [s.to for s in smsapi.sent] == [sent[0].recipient.removeprefix("+")]


async def test_a_rate_limit_is_waited_out_then_sent(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    person_id = await sms_gw.person("Halina Wiśniewska", phone=PHONE)
    smsapi.fail_next(status=429, message="Too many requests", retry_after=5)
    await notify(sms_gw, [person_id], school_message("msg:busy"))
    row = await Outbox.get(channel="sms")
    assert row.status == "pending" and row.attempts == 0  # a pause, not a failure
    assert row.next_attempt_at == sms_gw.clock.now() + timedelta(seconds=5)
    sms_gw.clock.advance(seconds=5)
    await sms_gw.drain()
    assert len(smsapi.to(PHONE)) == 1 and smsapi.requests == 2
    assert (await Outbox.get(channel="sms")).status == "sent"


async def test_a_wrong_token_is_not_a_send(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    person_id = await sms_gw.person("Halina Wiśniewska", phone=PHONE)
    smsapi.token = "another"
    await notify(sms_gw, [person_id], school_message("msg:token"))
    row: Any = await Outbox.get(channel="sms")
    assert row.status == "failed" and "SMSAPI error 101" in row.last_error
    assert smsapi.sent == []


async def test_a_people_list_brings_phones(sms_gw: Gateway, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("name,roles,email,phone\n"
                   "Halina Wiśniewska,parent,halina@example.pl,500 100 200\n"
                   "Jan Kowalski,citizen,jan@example.pl,22 755 90 00\n", encoding="utf-8")
    report = await imports.run_import(sms_gw.services, "people", str(csv), progress=False)
    assert report.applied == 1
    assert report.errors == ["line 3: 'phone' is not a mobile number an SMS can reach"]
    halina = await Person.get(name="Halina Wiśniewska")
    assert await Identity.filter(person_id=halina.id, channel="sms", address=PHONE).exists()
    # the same list again changes nothing
    again = await imports.run_import(sms_gw.services, "people", str(csv), progress=False)
    assert (again.applied, again.unchanged) == (0, 1)


async def test_an_urgent_announcement_reaches_a_phone(sms_gw: Gateway, smsapi: SmsApiDouble
                                                      ) -> None:
    """No SMS form of `announcement`: the Telegram one, as plain text (the fallback)."""
    from handlers import announcements

    await sms_gw.person("Halina Wiśniewska", phone=PHONE)
    staff = await Person.create(name="Urzędniczka", roles=["staff", "admin"], units=["urzad"],
                                created_at=sms_gw.clock.now())
    ann = await announcements.create(sms_gw.services, author=staff,
                                     title="Awaria wodociągu", body="Woda beczkowozem przy szkole.",
                                     audience={"roles": ["citizen"]}, priority="urgent")
    await announcements.publish(sms_gw.services, ann)
    await sms_gw.drain()
    [sms] = smsapi.to(PHONE)
    assert sms.message.startswith("🚨 📢 Awaria wodociągu\n") and "<b>" not in sms.message
    assert "Woda beczkowozem przy szkole." in sms.message
    assert sms.encoding == "ucs2" and sms.parts == count(sms.message).parts


async def test_an_urgent_announcement_falls_back_to_sms_where_the_bot_is_blocked(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """Issue #19's own list: "an urgent announcement falling back to SMS". A resident with
    Telegram and a phone, who never chose SMS: an ordinary announcement gives up when the
    bot is blocked (SMS is paid), an urgent one reaches the phone."""
    from handlers import announcements

    person_id = await sms_gw.linked(4192, "Halina Wiśniewska", phone=PHONE)
    staff = await Person.create(name="Urzędniczka", roles=["staff", "admin"], units=["urzad"],
                                created_at=sms_gw.clock.now())
    for priority, title in (("normal", "Zebranie mieszkańców"), ("urgent", "Awaria wodociągu")):
        sms_gw.botapi.fail_next(403, "Forbidden: bot was blocked by the user")
        ann = await announcements.create(sms_gw.services, author=staff, title=title,
                                         body="Szczegóły w urzędzie.",
                                         audience={"roles": ["citizen"]}, priority=priority)
        await announcements.publish(sms_gw.services, ann)
        await sms_gw.drain()
        # the blocked chat is now marked failing; cleared, so that the urgent one meets
        # the blocked bot too and falls back
        await Identity.filter(person_id=person_id, channel="telegram").update(
            failing_since=None)
    [sms] = smsapi.to(PHONE)
    assert "Awaria wodociągu" in sms.message and "Zebranie" not in sms.message
