"""Issue #19: "a phone is linked like the other identities, by a one-time code sent to
it" — end to end through the Bot API double and the SMSAPI double over real HTTP:
`/telefon NUMBER` sends a code by SMS, `/telefon CODE` in the same chat links the
number; wrong codes, expiry, the daily limits, numbers no SMS reaches. Also the settings
that name every registered channel (`/ustawienia kanał sms`, `polskie-znaki`), and the
console's lists read from the registry (a test's "pigeon" channel shows in them)."""

from __future__ import annotations

import re

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.jobs import run_job
from handlers import audit, claims, fanout, rodo
from handlers.channels import Channel
from handlers.message import InvalidInput
from handlers.preferences import parse_preferences
from store.clock import FrozenClock
from store.models import AddressClaim, AuditEntry, Case, Identity, OptOut, Outbox, Person
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import TOKEN, SmsApiDouble
from tests.panel import csrf_of, sign_in, staff_member

PHONE = "+48500100200"
CHAT = 4301
CODE = re.compile(r"\b(\d{6})\b")


@pytest.fixture
async def sms_gw(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
                 clock: FrozenClock, smsapi: SmsApiDouble) -> Gateway:
    with_sms = settings.model_copy(update={"sms_token": TOKEN, "sms_api_url": smsapi.url,
                                           "sms_rate": 1000.0})
    app = create_app(with_sms, clock=clock, run_workers=False)
    return Gateway(await aiohttp_client(app), with_sms, botapi, clock)


def code_in(smsapi: SmsApiDouble, number: str = PHONE) -> str:
    """The code of the newest SMS to `number`."""
    found = CODE.search(smsapi.to(number)[-1].message)
    assert found, smsapi.to(number)[-1].message
    return found.group(1)


async def ask(gw: Gateway, text: str, chat: int = CHAT) -> str:
    [reply] = await gw.tg(chat, text)
    return reply


async def test_a_phone_is_linked_by_a_code_sent_to_it(sms_gw: Gateway, smsapi: SmsApiDouble
                                                      ) -> None:
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    reply = await ask(sms_gw, "/telefon +48 500 100 200")
    assert PHONE in reply and "10 minut" in reply and "/telefon" in reply
    [sms] = smsapi.to(PHONE)
    code = code_in(smsapi)
    assert "e-Milanówek" in sms.message and "10 minut" in sms.message
    assert sms.parts == 1  # one part, Polish letters and all: it costs one SMS
    row = await Outbox.get(channel="sms")
    # a reply's priority (ahead of any broadcast), and no quiet hours: the person waits
    assert (row.recipient, row.person_id, row.priority, row.status) == (PHONE, person_id, 0, "sent")
    claim = await AddressClaim.get(person_id=person_id)
    assert (claim.channel, claim.address, claim.attempts, claim.used_at) == ("sms", PHONE, 0, None)
    assert code not in claim.code_hash  # only a keyed hash of the code is kept
    assert claim.expires_at == sms_gw.clock.now() + claims.CODE_TTL
    assert not await Identity.filter(channel="sms").exists()  # nothing before the proof

    sms_gw.clock.advance(minutes=9)
    reply = await ask(sms_gw, f"/telefon {code}")
    assert "połączony" in reply and PHONE in reply
    assert await Identity.filter(person_id=person_id, channel="sms", address=PHONE).exists()
    assert (await AddressClaim.get(id=claim.id)).used_at == sms_gw.clock.now()
    # a code works once
    again = await ask(sms_gw, f"/telefon {code}")
    assert "Nie czekam na kod" in again
    # and the English alias answers in English
    await Person.filter(id=person_id).update(language="en")
    assert "No code is expected" in await ask(sms_gw, f"/phone {code}")


async def test_a_number_moves_from_someone_else_only_by_the_code(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    before = await sms_gw.person("Poprzedni Właściciel", phone=PHONE)  # staff-entered: trusted
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await ask(sms_gw, "/telefon 500100200")
    assert (await Identity.get(channel="sms", address=PHONE)).person_id == before
    await ask(sms_gw, f"/telefon {code_in(smsapi)}")
    assert (await Identity.get(channel="sms", address=PHONE)).person_id == person_id


async def test_a_new_number_replaces_the_persons_old_one(sms_gw: Gateway, smsapi: SmsApiDouble
                                                         ) -> None:
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska", phone="+48600300400")
    await ask(sms_gw, f"/telefon {PHONE}")
    reply = await ask(sms_gw, f"/telefon {code_in(smsapi)}")
    assert "+48600300400" in reply  # said: the old number is no longer used
    assert await Identity.filter(person_id=person_id, channel="sms").values_list(
        "address", flat=True) == [PHONE]


async def test_five_wrong_codes_kill_the_claim(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await ask(sms_gw, f"/telefon {PHONE}")
    code = code_in(smsapi)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    replies = [await ask(sms_gw, f"/telefon {wrong}") for _ in range(claims.MAX_ATTEMPTS)]
    assert "Zostały 4 próby" in replies[0] and "Została 1 próba" in replies[3]
    assert "Kod unieważniony" in replies[4]
    assert (await AddressClaim.get(person_id=person_id)).attempts == claims.MAX_ATTEMPTS
    # the right code after that does nothing
    assert "unieważniony" in await ask(sms_gw, f"/telefon {code}")
    assert not await Identity.filter(channel="sms").exists()


async def test_an_expired_code_is_refused(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await ask(sms_gw, f"/telefon {PHONE}")
    sms_gw.clock.advance(minutes=10, seconds=1)
    assert "wygasł" in await ask(sms_gw, f"/telefon {code_in(smsapi)}")
    assert not await Identity.filter(channel="sms").exists()


async def test_codes_a_day_are_limited(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """Money and harassment: one person cannot make the town text a stranger's phone
    over and over, nor ask for codes without end."""
    await sms_gw.linked(CHAT, "Halina Wiśniewska")
    for _ in range(claims.CODES_PER_ADDRESS):
        assert "Wysłałem" in await ask(sms_gw, f"/telefon {PHONE}")
    first = smsapi.to(PHONE)[0].message
    assert "Za dużo kodów" in await ask(sms_gw, f"/telefon {PHONE}")
    assert len(smsapi.to(PHONE)) == claims.CODES_PER_ADDRESS
    # a new request replaced the old one: only the newest code links
    assert CODE.search(first).group(1) != code_in(smsapi)  # type: ignore[union-attr]
    others = ["+48600300400", "+48510200300"]
    for number in others[:claims.CODES_PER_PERSON - claims.CODES_PER_ADDRESS]:
        assert "Wysłałem" in await ask(sms_gw, f"/telefon {number}")
    assert "Za dużo kodów" in await ask(sms_gw, "/telefon +48790100200")
    assert len(smsapi.sent) == claims.CODES_PER_PERSON
    # another person asking for the same number on the same day is refused too
    await sms_gw.linked(CHAT + 1, "Ktoś Inny")
    assert "Za dużo kodów" in await ask(sms_gw, f"/telefon {PHONE}", chat=CHAT + 1)
    # a day later it works again
    sms_gw.clock.advance(hours=24, seconds=1)
    assert "Wysłałem" in await ask(sms_gw, f"/telefon {PHONE}")
    await ask(sms_gw, f"/telefon {code_in(smsapi)}")
    assert await Identity.filter(channel="sms", address=PHONE).exists()


async def test_a_number_no_sms_reaches_is_refused_politely(sms_gw: Gateway, smsapi: SmsApiDouble
                                                           ) -> None:
    await sms_gw.linked(CHAT, "Halina Wiśniewska")
    for typed in ("22 755 90 00", "12 345", "abc"):  # a landline, too short, no number
        reply = await ask(sms_gw, f"/telefon {typed}")
        assert "komórk" in reply, reply
    assert "/telefon +48" in await ask(sms_gw, "/telefon")  # how to use it
    assert smsapi.sent == [] and not await AddressClaim.exists()


async def test_a_number_already_linked_is_not_texted_again(sms_gw: Gateway, smsapi: SmsApiDouble
                                                           ) -> None:
    await sms_gw.linked(CHAT, "Halina Wiśniewska", phone=PHONE)
    assert "już połączony" in await ask(sms_gw, f"/telefon {PHONE}")
    assert smsapi.sent == []


async def test_a_number_that_said_stop_gets_no_code(sms_gw: Gateway, smsapi: SmsApiDouble
                                                     ) -> None:
    await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await OptOut.create(channel="sms", address=PHONE, since=sms_gw.clock.now())
    reply = await ask(sms_gw, f"/telefon {PHONE}")
    assert "wypisał się" in reply and "START" in reply
    assert smsapi.sent == [] and not await AddressClaim.exists()


async def test_without_sms_the_command_says_so(gw: Gateway) -> None:
    await gw.linked(CHAT, "Halina Wiśniewska")
    assert "SMS nie jest dostępny" in await ask(gw, f"/telefon {PHONE}")
    assert not await AddressClaim.exists()
    # and a stranger must link first
    assert "nie jest połączony" in await ask(gw, f"/telefon {PHONE}", chat=CHAT + 9)


async def test_settings_name_every_registered_channel(sms_gw: Gateway, smsapi: SmsApiDouble
                                                      ) -> None:
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska", email="halina@example.pl")
    reply = await ask(sms_gw, "/ustawienia kanał sms")
    assert "Zapisano" in reply
    assert (await Person.get(id=person_id)).channel_order == ["sms", "telegram", "email"]
    assert "SMS → Telegram → e-mail" in reply
    assert "Nie połączono: SMS" in reply and "/telefon" in reply  # no phone yet: says how
    await ask(sms_gw, f"/telefon {PHONE}")
    await ask(sms_gw, f"/telefon {code_in(smsapi)}")
    reply = await ask(sms_gw, "/ustawienia")
    assert "Połączone: Telegram, e-mail, SMS" in reply and "Nie połączono" not in reply
    # a notice now goes by SMS first
    await fanout.fan_out(sms_gw.services, [await Person.get(id=person_id)], fanout.Notice(
        kind="messages", template="school_message", key="msg:order",
        context={"about": {"class_name": "3a"}, "title": "Wycieczka", "body": "W piątek.",
                 "sender": "wychowawczyni"}), sms_gw.clock.now())
    await sms_gw.drain()
    assert "Wycieczka" in smsapi.to(PHONE)[-1].message
    assert "Nie rozumiem" in await ask(sms_gw, "/ustawienia kanał gołąb")
    reply = await ask(sms_gw, "/ustawienia kanał email")
    assert (await Person.get(id=person_id)).channel_order == ["email", "telegram", "sms"]


async def test_plain_letters_are_a_setting(sms_gw: Gateway) -> None:
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    reply = await ask(sms_gw, "/ustawienia polskie-znaki nie")
    assert (await Person.get(id=person_id)).plain_letters is True
    assert "Polskie znaki w SMS: nie" in reply
    reply = await ask(sms_gw, "/ustawienia polskie znaki tak")  # also as two words
    assert (await Person.get(id=person_id)).plain_letters is False
    assert "Polskie znaki w SMS: tak" in reply
    assert "Nie rozumiem" in await ask(sms_gw, "/ustawienia polskie-znaki może")
    await Person.filter(id=person_id).update(language="en")
    reply = await ask(sms_gw, "/settings plain-letters on")
    assert (await Person.get(id=person_id)).plain_letters is True
    assert "Plain letters in SMS: on" in reply


def test_plain_letters_in_the_preferences_rule() -> None:
    """The API's PATCH takes `plain_letters` through the same rule (a boolean)."""
    person = Person(id=1, name="x", notices=None)
    assert parse_preferences({"plain_letters": True}, person, ("email",)) == {"plain_letters": True}
    with pytest.raises(InvalidInput, match="plain_letters"):
        parse_preferences({"plain_letters": "tak"}, person, ("email",))


#: a fourth channel the console has never heard of (it neither reads nor sends here)
PIGEON = Channel(name="pigeon", read=lambda row, ctx: (None, "a test channel"),
                 outgoing=lambda: None, templates=("telegram",))


async def pigeon_gateway(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
                         clock: FrozenClock) -> Gateway:
    app = create_app(settings, clock=clock, run_workers=False, channels=[PIGEON])
    return Gateway(await aiohttp_client(app), settings, botapi, clock)


async def test_the_console_lists_read_the_registry(aiohttp_client, settings: Settings,  # type: ignore[no-untyped-def]
                                                   botapi: BotApiDouble, clock: FrozenClock
                                                   ) -> None:
    gw = await pigeon_gateway(aiohttp_client, settings, botapi, clock)
    await staff_member(gw, "admin@milanowek.example", ["admin", "staff"], ["urzad"],
                       name="Administratorka")
    client = await sign_in(gw, "admin@milanowek.example")

    health = await (await client.get("/panel/zdrowie")).text()
    assert re.search(r"<tr><td>pigeon</td><td>0</td>", health)  # its queue, at 0 too

    now = gw.clock.now()
    for number, channel in (("UM-2026-000901", "pigeon"), ("UM-2026-000902", "email")):
        await Case.create(number=number, subject=f"Sprawa {channel}", body="…",
                          status="received", access_code_hash="x", origin_channel=channel,
                          last_channel=channel, created_at=now, updated_at=now)
    queue = await (await client.get("/panel/sprawy")).text()
    assert '<option value="pigeon"' in queue and '<option value="web"' in queue
    only = await (await client.get("/panel/sprawy", params={"kanal": "pigeon"})).text()
    assert "UM-2026-000901" in only and "UM-2026-000902" not in only

    person_id = await gw.person("Zofia Gołębiowska")
    page = await (await client.get(f"/panel/ludzie/{person_id}")).text()
    assert '<option value="pigeon"' in page and 'name="bez_polskich"' in page
    resp = await client.post(f"/panel/ludzie/{person_id}/ustawienia", allow_redirects=False,
                             data={"csrf": csrf_of(page), "kanal": "pigeon", "bez_polskich": "1"})
    assert resp.status == 303
    person = await Person.get(id=person_id)
    assert (person.channel_order, person.plain_letters) == (["pigeon", "telegram", "email"], True)
    entry = await AuditEntry.get(action="person.preferences")
    assert entry.object == f"person:{person_id}" and entry.source == "console"
    page = await (await client.get(f"/panel/ludzie/{person_id}")).text()
    assert '<option value="pigeon" selected' in page and 'name="bez_polskich" value="1" checked' in page
    resp = await client.post(f"/panel/ludzie/{person_id}/ustawienia", allow_redirects=False,
                             data={"csrf": csrf_of(page), "kanal": "gołąb"})
    assert resp.status == 400
    resp = await client.post(f"/panel/ludzie/{person_id}/ustawienia", allow_redirects=False,
                             data={"csrf": csrf_of(page), "kanal": "email"})
    person = await Person.get(id=person_id)
    assert (person.channel_order, person.plain_letters) == (["email", "telegram", "pigeon"], False)


async def test_claims_are_the_persons_data(sms_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """RODO: a claimed number is personal data even before it is proven — exported,
    erased with the person, and gone after the retention period."""
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await ask(sms_gw, f"/telefon {PHONE}")
    exported = await rodo.export(person_id, channels=sms_gw.services.channels)
    assert exported is not None
    assert [c["address"] for c in exported["address_claims"]] == [PHONE]
    await rodo.erase(person_id, audit.Actor("test", "test"), sms_gw.clock.now(),
                     channels=sms_gw.services.channels)
    assert not await AddressClaim.exists()

    other = await sms_gw.linked(CHAT + 1, "Ktoś Inny")
    await ask(sms_gw, f"/telefon {PHONE}", chat=CHAT + 1)
    sms_gw.clock.advance(days=30)
    await run_job(sms_gw.services, "retention")
    assert await AddressClaim.filter(person_id=other).exists()  # 30 days after it expired
    sms_gw.clock.advance(minutes=11)
    summary = await run_job(sms_gw.services, "retention")
    assert summary["address_claims_deleted"] == 1 and not await AddressClaim.exists()


async def test_guesses_at_once_are_counted_before_any_is_compared(
        sms_gw: Gateway, smsapi: SmsApiDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review of #19: the attempts were read, the code compared, and only then counted, so
    guesses checked at the same moment (instances taking one chat's messages in parallel)
    each passed the 5-try limit. Now a guess is counted first and compared only if it
    was still allowed."""
    person_id = await sms_gw.linked(CHAT, "Halina Wiśniewska")
    await ask(sms_gw, f"/telefon {PHONE}")
    right = code_in(smsapi)
    compared = 0
    real = claims.code_hash

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal compared
        compared += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(claims, "code_hash", counting)
    person = await Person.get(id=person_id)
    wrong = [f"{(int(right) + n) % 1_000_000:06d}" for n in range(1, 21)]
    import asyncio

    outcomes = await asyncio.gather(*(claims.confirm(sms_gw.services, person, "sms", code,
                                                     sms_gw.clock.now()) for code in wrong))
    assert compared <= claims.MAX_ATTEMPTS
    assert {o.outcome for o in outcomes} <= {"wrong", "dead"}
    late = await claims.confirm(sms_gw.services, person, "sms", right, sms_gw.clock.now())
    assert late.outcome == "dead" and not await Identity.filter(channel="sms").exists()
