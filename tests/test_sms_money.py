"""Issue #19, SMS costs money: the month's budget kept before each message leaves (and by
two senders at once), the rest by the next channel and the admins told once; SMS used
only where a person chose it, for an urgent notice's last fallback, or for someone with
no other channel; "bez polskich znaków"; an announcement's SMS counted with its link in;
the composer's estimate; quiet hours and spacing per number. All through the SMSAPI
double over HTTP (tests/doubles/smsapi.py) and the real database."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import Settings
from handlers import announcements, fanout, router
from handlers.message import InboundMessage, Reply
from sms.budget import BudgetedSender, month_of, zloty
from sms.encoding import count
from sms.smsapi import SmsApiSender
from store.clock import FrozenClock
from store.models import ChannelSpend, Outbox, Person
from store.outbox import PermanentSendError
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import TOKEN, SmsApiDouble
from tests.panel import csrf_of, sign_in, staff_member

WARSAW = ZoneInfo("Europe/Warsaw")
PHONES = [f"+4850010020{n}" for n in range(6)]
#: one GSM part ("Zebranie" has no Polish letters)
SHORT = "Zebranie w czwartek o 18."


def with_sms(settings: Settings, smsapi: SmsApiDouble, **more: object) -> Settings:
    return settings.model_copy(update={"sms_token": TOKEN, "sms_api_url": smsapi.url,
                                       "sms_rate": 1000.0, **more})


@pytest.fixture
async def money_gw(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
                   clock: FrozenClock, smsapi: SmsApiDouble) -> Gateway:
    """SMS at 0,16 zł a part with 0,48 zł a month: three parts."""
    configured = with_sms(settings, smsapi, sms_part_price=Decimal("0.16"),
                          sms_monthly_budget=Decimal("0.48"))
    app = create_app(configured, clock=clock, run_workers=False)
    return Gateway(await aiohttp_client(app), configured, botapi, clock)


def message(key: str, body: str = SHORT, urgent: bool = False) -> fanout.Notice:
    return fanout.Notice(kind="messages", template="school_message", key=key, urgent=urgent,
                         context={"about": {"class_name": "3a"}, "title": "Zebranie",
                                  "body": body, "sender": "wychowawczyni"})


async def notify(gw: Gateway, person_ids: list[int], notice: fanout.Notice) -> fanout.Outcome:
    people = [await Person.get(id=pid) for pid in person_ids]
    outcome = await fanout.fan_out(gw.services, people, notice, gw.clock.now())
    await gw.drain()
    return outcome


async def sms_first(gw: Gateway, n: int, **fields: object) -> int:
    """A person who put SMS first in their order, mail after it."""
    pid = await gw.person(f"Osoba {n}", ["parent"], phone=PHONES[n], email=f"o{n}@example.pl")
    await Person.filter(id=pid).update(channel_order=["sms", "email"], **fields)
    return pid


# --- settings -----------------------------------------------------------------------------------


def test_a_budget_needs_a_price_and_is_kept_in_parts() -> None:
    with pytest.raises(ValidationError, match="EMIL_SMS_MONTHLY_BUDGET needs EMIL_SMS_PART_PRICE"):
        Settings(_env_file=None, sms_monthly_budget=Decimal("100"))  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="sms_part_price"):
        Settings(_env_file=None, sms_part_price=Decimal("-0.16"))  # type: ignore[call-arg]
    settings = Settings(_env_file=None, sms_part_price=Decimal("0.16"),  # type: ignore[call-arg]
                        sms_monthly_budget=Decimal("100"))
    assert settings.sms_budget_parts == 625
    assert Settings(_env_file=None).sms_budget_parts is None  # type: ignore[call-arg]
    assert zloty(Decimal("0.16") * 78) == "12,48\u00a0zł"
    assert zloty(Decimal("1234.5")) == "1\u00a0234,50\u00a0zł"


def test_the_month_is_the_towns() -> None:
    # 23:30 UTC on 30 November is half past midnight on 1 December in Milanówek
    assert month_of(datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc), WARSAW) == "2026-12"
    assert month_of(datetime(2026, 11, 30, 22, 30, tzinfo=timezone.utc), WARSAW) == "2026-11"


# --- the budget ---------------------------------------------------------------------------------


async def test_budget_reached_the_rest_goes_by_mail_and_the_admins_are_told_once(
        money_gw: Gateway, smsapi: SmsApiDouble) -> None:
    gw = money_gw
    admin = await gw.person("Administratorka", ["admin"], email="admin@milanowek.example")
    people = [await sms_first(gw, n) for n in range(4)]
    await notify(gw, people, message("msg:one"))
    # three parts bought: three SMS of one part each, the fourth person by mail
    assert len(smsapi.sent) == 3 and all(s.parts == 1 for s in smsapi.sent)
    rows = await Outbox.filter(idempotency_key__startswith="msg:one").order_by("id")
    failed = [r for r in rows if r.status == "failed"]
    assert len(failed) == 1 and failed[0].channel == "sms" and failed[0].last_error == "budget"
    mailed = [r for r in rows if r.channel == "email"]
    assert [(r.status, r.person_id) for r in mailed] == [("sent", failed[0].person_id)]
    spend = await ChannelSpend.get(channel="sms")
    assert (spend.month, spend.units) == ("2026-11", 3) and spend.exhausted_at is not None
    # the next notice: nobody by SMS, everybody by mail — and the admins are not told again
    await notify(gw, people, message("msg:two"))
    assert len(smsapi.sent) == 3
    second = await Outbox.filter(idempotency_key__startswith="msg:two", channel="email")
    assert sorted(r.status for r in second) == ["sent"] * 4
    told = await Outbox.filter(cause="sms-budget")
    assert [(r.person_id, r.channel, r.status) for r in told] == [(admin, "email", "sent")]
    [alert] = [m for m in gw.sent_mail() if m["To"] == "admin@milanowek.example"
               and "SMS" in str(m["Subject"])]
    assert str(alert["Subject"]) == "Budżet SMS na miesiąc 2026-11 się wyczerpał"
    assert "3 części SMS" in alert.get_body(("plain",)).get_content()
    # /metrics shows the month's spend
    metrics = await (await gw.client.get("/metrics", headers=gw.admin)).text()
    assert 'emil_channel_spend_units{channel="sms",month="2026-11"} 3.0' in metrics
    # a new month in Milanówek (23:00 UTC on 30 November is midnight in Warsaw): a new budget
    gw.clock.set(datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc))
    await notify(gw, people[:1], message("msg:december", urgent=True))  # urgent: at night too
    assert len(smsapi.sent) == 4
    assert (await ChannelSpend.get(channel="sms", month="2026-12")).units == 1


async def test_a_refused_send_gives_its_parts_back(money_gw: Gateway, smsapi: SmsApiDouble
                                                  ) -> None:
    person = await sms_first(money_gw, 0)
    smsapi.fail_next(code=14, message="Wrong sender name")  # permanent: on to mail
    smsapi.fail_next(status=502, message="Bad gateway")  # transient: retried
    await notify(money_gw, [person], message("msg:refused"))
    other = await sms_first(money_gw, 1)
    await notify(money_gw, [other], message("msg:retried"))
    assert (await ChannelSpend.get(channel="sms")).units == 0  # neither was charged
    money_gw.clock.advance(minutes=5)
    await money_gw.drain()
    assert len(smsapi.to(PHONES[1])) == 1
    assert (await ChannelSpend.get(channel="sms")).units == 1  # counted once, when it went


async def test_two_senders_at_once_never_overspend(settings: Settings, smsapi: SmsApiDouble,
                                                   clock: FrozenClock) -> None:
    """Two instances' senders, each its own object, racing for the last parts of the
    month (and for creating the month's row): together they keep to the cap."""
    from store.db import Store

    store = Store(settings.database_url)
    await store.open(migrate=True)
    try:
        cap = 7
        senders = [BudgetedSender(SmsApiSender(TOKEN, smsapi.url), cap, WARSAW)
                   for _ in range(2)]
        rows = [Outbox(id=n + 1, channel="sms", recipient=PHONES[n % 6],
                       payload={"text": SHORT}, idempotency_key=f"race:{n}") for n in range(20)]

        async def one(n: int, stagger: float) -> str:
            # started a little apart, as a paced lane starts its sends: some reach the
            # store while another is between its UPDATE and creating the month's row
            await asyncio.sleep(n * stagger)
            try:
                await senders[n % 2].send(rows[n])
            except PermanentSendError as error:
                return str(error)
            return "sent"

        for stagger in [n / 10_000 for n in range(12)]:  # each a new race for the row
            await ChannelSpend.all().delete()
            smsapi.sent.clear()
            outcomes = await asyncio.gather(*(one(n, stagger) for n in range(len(rows))))
            # one part each: exactly the cap goes — none over it, and none refused while
            # there was room
            [spend] = await ChannelSpend.filter(channel="sms")
            assert sum(s.parts for s in smsapi.sent) == spend.units == cap, stagger
            assert outcomes.count("sent") == cap, (stagger, outcomes)
            assert outcomes.count("budget") == len(rows) - cap
    finally:
        await store.close()


# --- when SMS is used ---------------------------------------------------------------------------


async def test_sms_is_used_where_chosen_urgent_last_or_the_only_way(
        money_gw: Gateway, smsapi: SmsApiDouble) -> None:
    gw = money_gw
    both = await gw.person("Ma pocztę i telefon", phone=PHONES[0], email="oba@example.pl")
    chose = await sms_first(gw, 1)
    only = await gw.person("Tylko telefon", phone=PHONES[2])
    people = [await Person.get(id=pid) for pid in (both, chose, only)]
    [plain, urgent] = [fanout.plan(gw.services, await fanout.recipients_of(
        gw.services, people, urgent=flag), message(f"msg:{flag}", urgent=flag), gw.clock.now())
        for flag in (False, True)]

    def routes(planned: fanout.Plan) -> dict[int | None, list[str]]:
        return {d.person_id: [d.channel] + [f["channel"] for f in d.fallbacks]
                for d in planned.deliveries}

    # a routine notice: SMS only for the one who chose it and the one with nothing else
    assert routes(plain) == {both: ["email"], chose: ["sms", "email"], only: ["sms"]}
    # an urgent one: SMS as the last fallback of the one who did not choose it
    assert routes(urgent) == {both: ["email", "sms"], chose: ["sms", "email"], only: ["sms"]}


async def test_a_reply_goes_back_by_sms_and_without_polish_letters_if_asked(
        money_gw: Gateway) -> None:
    """Answers go back on the channel a message came from, paid or not, in the letters
    the person chose (handlers/router.to_deliveries)."""
    pid = await money_gw.person("Halina Wiśniewska", ["parent"], phone=PHONES[0],
                                email="halina@example.pl")
    await Person.filter(id=pid).update(plain_letters=True)
    person = await Person.get(id=pid)
    msg = InboundMessage(channel="sms", address=PHONES[0], text="STATUS", inbound_id=7)
    [delivery] = router.to_deliveries(money_gw.services, msg, person, [Reply(
        "school_message", {"about": {"class_name": "3a"}, "title": "Wycieczka",
                           "body": "Zbiórka przed szkołą w piątek.", "sender": "wychowawczyni"})])
    assert (delivery.channel, delivery.recipient) == ("sms", PHONES[0])
    assert "szkola w piatek" in delivery.payload["text"]
    assert count(delivery.payload["text"]).encoding == "gsm"


async def test_bez_polskich_znakow_is_one_part_instead_of_two(money_gw: Gateway,
                                                               smsapi: SmsApiDouble) -> None:
    body = "W piątek wycieczka do Żyrardowa, zbiórka o 7:45 przed szkołą."
    polish = await sms_first(money_gw, 0)
    plain = await sms_first(money_gw, 1, plain_letters=True)
    await notify(money_gw, [polish, plain], message("msg:letters", body))
    [with_letters], [without] = smsapi.to(PHONES[0]), smsapi.to(PHONES[1])
    assert (with_letters.encoding, with_letters.parts) == ("ucs2", 2)
    assert (without.encoding, without.parts) == ("gsm", 1)
    assert "wycieczka do Zyrardowa, zbiorka o 7:45 przed szkola." in without.message


async def test_an_announcements_sms_is_counted_with_its_link_in(
        money_gw: Gateway, smsapi: SmsApiDouble) -> None:
    """SMS shows no button: the text ends with the person's acknowledgement link, and the
    parts are counted (and cut to EMIL_SMS_MAX_PARTS) with the link in. Before, an SMS
    reader had no way to acknowledge (the button was Telegram's), and the link's
    substitution ran after the channel had cut the text."""
    gw = money_gw
    await ChannelSpend.create(channel="sms", month="2026-11", units=-100)  # room for this test
    pid = await gw.person("Halina Wiśniewska", phone=PHONES[0])
    author = await Person.create(name="Urzędniczka", roles=["staff", "admin"], units=["urzad"],
                                 created_at=gw.clock.now())
    body = ("Woda beczkowozem przy szkole i przy urzędzie, od ósmej do dwudziestej. " * 3).strip()
    ann = await announcements.create(gw.services, author=author, title="Awaria wodociągu",
                                     body=body, audience={"roles": ["citizen"]}, priority="urgent")
    await announcements.publish(gw.services, ann)
    await gw.drain()
    [sms] = smsapi.to(PHONES[0])
    link = re.search(r"https?://\S+/ack/\S+$", sms.message)
    assert link, sms.message
    assert sms.parts == count(sms.message).parts == gw.settings.sms_max_parts
    assert sms.message.startswith("🚨 📢 Awaria wodociągu\n") and "…\nhttp" in sms.message
    page = await gw.client.get(link.group().removeprefix(gw.settings.base_url))
    assert page.status == 200 and "Awaria wodociągu" in await page.text()
    row = await Outbox.get(channel="sms", person_id=pid)
    assert "buttons" not in row.payload


# --- the composer -------------------------------------------------------------------------------


async def test_the_composer_shows_sms_people_parts_cost_and_budget(
        money_gw: Gateway, smsapi: SmsApiDouble) -> None:
    gw = money_gw
    await staff_member(gw, "sekretariat@milanowek.example", ["staff", "admin"], ["urzad"],
                       name="Sekretariat")
    for n in range(3):  # by SMS: two read Polish letters, one asked for none
        await sms_first(gw, n, units=["urzad"], plain_letters=n == 2)
    await gw.person("Z Telegramem", ["citizen"], units=["urzad"], phone=PHONES[4],
                    email="tg@example.pl")  # mail first; SMS only were it urgent
    await ChannelSpend.create(channel="sms", month="2026-11", units=1)
    client = await sign_in(gw, "sekretariat@milanowek.example")
    page = await (await client.get("/panel/ogloszenia")).text()
    form = {"csrf": csrf_of(page), "tytul": "Zebranie mieszkańców",
            "tresc": "Zapraszamy w czwartek o 18 do sali w urzędzie.", "unit:urzad": "urzad"}
    html = (await (await client.post("/panel/ogloszenia/podglad", data=form)).text()).replace(
        "\u00a0", " ")
    block = html[html.index('id="koszt-sms"'):]
    block = block[:block.index("</div>")]
    assert "SMS-em dostanie je 3 osoby</strong>." in block  # not the one with mail first
    # the real SMS text: Polish letters, the 📢, and a link as long as a real one
    assert "Zebranie mieszkańców" in block and "/ack/" in block
    parts = re.search(r"Jedna wiadomość: (\d+) części? — przez polskie znaki lub emoji cały "
                      r"tekst idzie w UCS-2 .*?bez polskich znaków: (\d+) częś", block)
    assert parts, block
    own, plain = int(parts.group(1)), int(parts.group(2))
    assert (own, plain) == (3, 1)
    total = 2 * own + plain
    assert f"Razem {total} części, szacunkowo <strong>{zloty(Decimal('0.16') * total)}".replace(
        "\u00a0", " ") in block
    assert "Z budżetu na 2026-11 zostało 2 części (0,32 zł) — reszta pójdzie następnym" in block
    # urgent: SMS is the last fallback of the one with mail first
    urgent = await (await client.post("/panel/ogloszenia/podglad", data={**form, "pilne": "1"})
                    ).text()
    assert "SMS-em dostanie je 3 osoby</strong> (i 1 osoba, jeśli zawiedzie ich inny kanał)" \
        in urgent
    assert smsapi.sent == [] and await Outbox.filter(channel="sms").count() == 0


async def test_no_sms_no_estimate(gw: Gateway) -> None:
    await staff_member(gw, "sekretariat@milanowek.example", ["staff"], ["urzad"])
    client = await sign_in(gw, "sekretariat@milanowek.example")
    page = await (await client.get("/panel/ogloszenia")).text()
    preview = await (await client.post("/panel/ogloszenia/podglad", data={
        "csrf": csrf_of(page), "tytul": "T", "tresc": "B", "unit:urzad": "urzad"})).text()
    assert "Trafi do" in preview and "koszt-sms" not in preview


# --- pacing -------------------------------------------------------------------------------------


async def test_quiet_hours_hold_an_sms(money_gw: Gateway, smsapi: SmsApiDouble) -> None:
    gw = money_gw
    gw.clock.set(datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc))  # 23:30 in Milanówek
    person = await sms_first(gw, 0)
    await notify(gw, [person], message("msg:night"))
    assert smsapi.sent == []
    row = await Outbox.get(channel="sms")
    assert row.next_attempt_at == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)  # 07:00
    gw.clock.set(datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc))
    await gw.drain()
    assert len(smsapi.to(PHONES[0])) == 1
    # an urgent one goes at night
    gw.clock.set(datetime(2026, 11, 26, 22, 30, tzinfo=timezone.utc))
    await notify(gw, [person], message("msg:storm", urgent=True))
    assert len(smsapi.to(PHONES[0])) == 2


async def test_two_messages_to_one_number_are_spaced(
        aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
        clock: FrozenClock, smsapi: SmsApiDouble) -> None:
    spaced = with_sms(settings, smsapi, sms_number_interval=1.0)  # the default
    gw = Gateway(await aiohttp_client(create_app(spaced, clock=clock, run_workers=False)),
                 spaced, botapi, clock)
    person = await sms_first(gw, 0)
    other = await sms_first(gw, 1)
    people = [await Person.get(id=pid) for pid in (person, other)]
    for key in ("msg:a", "msg:b"):
        await fanout.fan_out(gw.services, people[:1] if key == "msg:b" else people,
                             message(key), gw.clock.now())
    await gw.drain()
    # one to each number now; the second to the same number waits its second
    assert len(smsapi.to(PHONES[0])) == 1 and len(smsapi.to(PHONES[1])) == 1
    waiting = await Outbox.get(channel="sms", status="pending")
    assert waiting.next_attempt_at == gw.clock.now() + timedelta(seconds=1)
    gw.clock.advance(seconds=1)
    await gw.drain()
    assert len(smsapi.to(PHONES[0])) == 2
