"""Issue #19: a case's requester on any channel, a text on a channel where text is a case
(SMS) opening or adding to a case, and RODO finding raw input by the channel's own rule.

The channel here is a second SMS channel, "sms2", registered by the test: its raw rows are
the SMS provider's incoming form stored as JSON (what the SMS inbound stores), read into
an `InboundMessage` by the test's reader; everything else is the SMS channel's own
(sms/channel.py: its addresses, rendering and `raw_senders`) and the gateway's."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from gateway.app import create_app
from gateway.config import Settings
from handlers import audit, cases, rodo
from handlers.cases import contacts_of
from handlers.channels import Channel, Outgoing
from handlers.message import InboundMessage
from sms import channel as sms_channel
from store.clock import FrozenClock
from store.db import APP_LABEL, Store, tortoise_config
from store.models import Case, CaseContact, CaseEvent, Identity, Outbox, Person, RawInbound
from store.sql import on_postgres, sql
from tests.conftest import Gateway, make_mail
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import SmsApiDouble
from tests.panel import sign_in, staff_member
from tests.sms import say, sms_gateway

NUMBER = "+48500100200"
OTHER = "+48600700800"
OFFICE = audit.Actor("Biuro (test)", "api", scopes=frozenset({"cases"}))


class Phone:
    """The far end of the test's SMS lane: what was sent, to whom."""

    channel = "sms2"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, row: Outbox) -> None:
        self.sent.append((row.recipient, row.payload["text"]))

    def texts_to(self, number: str) -> list[str]:
        return [text for to, text in self.sent if to == number]


def read_sms(row: RawInbound, ctx: Any) -> tuple[InboundMessage | None, str]:
    """The provider's form (sms_from, sms_to, sms_text, sms_date, MsgId) → a message; an
    SMS has no commands here (the real channel's STOP/START/STATUS are its own)."""
    form = json.loads(bytes(row.payload))
    sender = sms_channel.normalise(form["sms_from"])
    if sender is None:
        return None, "not a number"
    return InboundMessage(channel="sms2", address=sender, text=form["sms_text"],
                          message_id=form["MsgId"], inbound_id=row.id), ""


def sms2(phone: Phone) -> Channel:
    return Channel(name="sms2", read=read_sms, outgoing=lambda: Outgoing(phone),
                   templates=("sms", "telegram"), render=sms_channel.render,
                   normalise=sms_channel.normalise, raw_senders=sms_channel.raw_senders,
                   cases_by_text=True)


@pytest.fixture
def phone() -> Phone:
    return Phone()


@pytest.fixture
async def sgw(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
              clock: FrozenClock, phone: Phone) -> Gateway:
    app = create_app(settings, clock=clock, run_workers=False, channels=[sms2(phone)])
    return Gateway(await aiohttp_client(app), settings, botapi, clock)


async def text(gw: Gateway, sender: str, words: str) -> None:
    """An SMS arrives: the provider's form stored raw (as the callback does), then read."""
    n = await RawInbound.filter(channel="sms2").count()
    form = {"sms_from": sender.lstrip("+"), "sms_to": "48799000111", "sms_text": words,
            "sms_date": str(1764750000 + n), "MsgId": f"msg-{sender}-{n}"}
    await RawInbound.create(channel="sms2", external_id=form["MsgId"],
                            payload=json.dumps(form).encode(), received_at=gw.clock.now())
    await gw.drain()


async def test_a_text_opens_a_case_a_clerks_reply_reaches_it_and_a_text_back_adds_to_it(
        sgw: Gateway, phone: Phone) -> None:
    gw = sgw
    await text(gw, NUMBER, "Na ul. Kościuszki 12 od tygodnia nie świeci latarnia.")
    case = await Case.get()
    assert (case.origin_channel, case.subject) == (
        "sms2", "Na ul. Kościuszki 12 od tygodnia nie świeci latarnia.")
    assert case.person_id is None  # an SMS proves nobody: the number is the requester
    assert await contacts_of(case) == {("sms2", NUMBER)}
    [created] = phone.texts_to(NUMBER)
    assert case.number in created and "Kod dostępu" in created and "<" not in created

    # a clerk's reply goes to the number, by the channel it came in on
    await cases.staff_event(gw.services, case.number, OFFICE, status="in_progress",
                            note="Zgłosiliśmy awarię do PGE.", public=True)
    await gw.drain()
    update = phone.texts_to(NUMBER)[-1]
    assert case.number in update and "Zgłosiliśmy awarię do PGE." in update
    assert "w toku" in update

    # three days later the resident texts back: that is part of the case, not a new one
    gw.clock.advance(days=3)
    await text(gw, NUMBER, "Dziękuję, latarnia stoi przy przejściu.")
    assert await Case.all().count() == 1
    messages = await CaseEvent.filter(case_id=case.number, kind="message").values_list(
        "text", "channel")
    assert messages == [("Dziękuję, latarnia stoi przy przejściu.", "sms2")]
    assert case.number in phone.texts_to(NUMBER)[-1]
    assert (await Case.get(number=case.number)).last_channel == "sms2"


async def test_text_after_the_follow_up_window_or_from_another_number_opens_a_new_case(
        sgw: Gateway, phone: Phone) -> None:
    gw = sgw
    await text(gw, NUMBER, "Dziura w jezdni na ul. Warszawskiej.")
    first = await Case.get()
    # another number texting now is another resident: their own case
    await text(gw, OTHER, "Przepełniony kosz przy przystanku.")
    assert await Case.all().count() == 2
    assert await CaseEvent.filter(case_id=first.number, kind="message").count() == 0
    # our last message to NUMBER was about `first`; past the window a text is new again
    gw.clock.advance(seconds=(cases.FOLLOW_UP + timedelta(minutes=1)).total_seconds())
    await text(gw, NUMBER, "Znowu dziura, tym razem na Królewskiej.")
    assert await Case.all().count() == 3
    assert await CaseEvent.filter(case_id=first.number, kind="message").count() == 0
    # an empty text is answered, and opens nothing
    await text(gw, OTHER, "   ")
    assert await Case.all().count() == 3
    assert "pusty" in phone.texts_to(OTHER)[-1]


async def test_the_messages_about_a_case_name_it_as_their_cause(sgw: Gateway) -> None:
    """What a later text is matched by: the outbox's indexed cause, `case:<number>`."""
    gw = sgw
    await text(gw, NUMBER, "Hałas z budowy w nocy.")
    case = await Case.get()
    await cases.staff_event(gw.services, case.number, OFFICE, status=None, note="Sprawdzimy.",
                            public=True)
    causes = await Outbox.filter(recipient=NUMBER).order_by("id").values_list("cause",
                                                                              flat=True)
    assert causes == [f"case:{case.number}", f"case:{case.number}"]


async def test_by_the_real_sms_channel_through_the_providers_double(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        smsapi: SmsApiDouble) -> None:  # noqa: F811 - the fixture imported above
    """The same, end to end through SMSAPI's double: its incoming-SMS callback opens a case,
    the clerk's reply goes out through its API to the number, the answer back is added,
    and STATUS is still a command, not a case."""
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    [created] = await say(gw, smsapi, "Przy Smoczej 4 leży zwalone drzewo.", sender=NUMBER)
    case = await Case.get()
    assert case.number in created and await contacts_of(case) == {("sms", NUMBER)}
    await cases.staff_event(gw.services, case.number, OFFICE, status=None,
                            note="Straż miejska jest w drodze.", public=True)
    await gw.drain()
    assert "Straż miejska jest w drodze." in smsapi.to(NUMBER)[-1].message
    gw.clock.advance(hours=2)
    [added] = await say(gw, smsapi, "Drzewo blokuje też chodnik.", sender=NUMBER)
    assert case.number in added and await Case.all().count() == 1
    [status] = await say(gw, smsapi, f"STATUS {case.number}", sender=NUMBER)
    assert case.number in status and await Case.all().count() == 1
    assert await CaseEvent.filter(case_id=case.number, kind="message").values_list(
        "text", flat=True) == ["Drzewo blokuje też chodnik."]


async def test_a_case_update_goes_by_mail_not_by_an_sms_the_person_never_chose(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        smsapi: SmsApiDouble) -> None:  # noqa: F811 - the fixture imported above
    """A person with mail and a phone who asked by the API, by mail: the clerk's answer is
    one mail with no SMS behind it. SMS costs the town money; she never put it in her
    channel order and mail reaches her (the fan-out's `paid_last`)."""
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    person_id = await gw.person("Halina Wiśniewska", phone=NUMBER, email="halina@example.pl")
    resp = await gw.client.post("/api/v1/cases", json={
        "subject": "Dziura w jezdni", "body": "Na Kościelnej, przy szkole.",
        "email": "halina@example.pl"})
    assert resp.status == 201, await resp.text()
    number = (await resp.json())["number"]
    assert (await Case.get(number=number)).person_id == person_id  # hers, by her address
    await cases.staff_event(gw.services, number, OFFICE, status=None,
                            note="Załatamy ją w tym tygodniu.", public=True)
    row = await Outbox.get(idempotency_key__startswith="case-event:")
    assert (row.channel, row.recipient) == ("email", "halina@example.pl")
    assert [f["channel"] for f in row.fallbacks] == []


async def test_a_case_opened_by_sms_is_answered_by_sms_though_mail_would_reach_her(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        smsapi: SmsApiDouble) -> None:  # noqa: F811 - the fixture imported above
    """The same person texts the town: the answer goes back where her message came from,
    by SMS first, her mail behind it."""
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    await gw.person("Halina Wiśniewska", phone=NUMBER, email="halina@example.pl")
    await say(gw, smsapi, "Przy Smoczej 4 leży zwalone drzewo.", sender=NUMBER)
    case = await Case.get()
    await cases.staff_event(gw.services, case.number, OFFICE, status=None,
                            note="Straż miejska jest w drodze.", public=True)
    row = await Outbox.get(idempotency_key__startswith="case-event:")
    assert (row.channel, row.recipient) == ("sms", NUMBER)
    assert [f["channel"] for f in row.fallbacks] == ["email"]
    await gw.drain()
    assert "Straż miejska jest w drodze." in smsapi.to(NUMBER)[-1].message


async def test_a_case_answer_skips_the_number_that_said_stop(
        aiohttp_client: Any, settings: Settings, botapi: BotApiDouble, clock: FrozenClock,
        smsapi: SmsApiDouble) -> None:  # noqa: F811 - the fixture imported above
    """Opened by SMS, then STOP from that number: the answer starts on her mail rather
    than on an SMS the sender would refuse (as `fanout.addresses_of` leaves it out)."""
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    await gw.person("Halina Wiśniewska", phone=NUMBER, email="halina@example.pl")
    await say(gw, smsapi, "Przy Smoczej 4 leży zwalone drzewo.", sender=NUMBER)
    await say(gw, smsapi, "STOP", sender=NUMBER)
    case = await Case.get()
    await cases.staff_event(gw.services, case.number, OFFICE, status=None,
                            note="Straż miejska jest w drodze.", public=True)
    row = await Outbox.get(idempotency_key__startswith="case-event:")
    assert (row.channel, row.recipient, row.fallbacks) == ("email", "halina@example.pl", [])


async def test_a_case_keeps_each_channel_its_requester_used(gw: Gateway) -> None:
    """Opened by mail, followed up from Telegram by the same (linked) person: both are
    the case's contacts, the clerk's reply goes by the channel they last used, and the
    console shows both, with the channels' names."""
    person_id = await gw.linked(4401, "Jan Kowalski", email="jan@example.pl")
    await gw.mail(make_mail("Zalana piwnica", "Woda w piwnicy bloku przy Spacerowej 3."),
                  sender="jan@example.pl")
    case = await Case.get()
    assert case.person_id is None  # the mail proved nobody
    assert await contacts_of(case) == {("email", "jan@example.pl")}
    # Telegram proves the chat; the linked person holds the mail's address: theirs
    await gw.tg(4401, f"/sprawa {case.number}")
    await gw.tg(4401, "Woda już opadła.")
    assert await contacts_of(case) == {("email", "jan@example.pl"), ("telegram", "4401")}
    targets, _ = await cases.requester_targets(gw.services, await Case.get(number=case.number))
    assert targets[0] == ("telegram", "4401")  # the channel they last used, first
    assert person_id

    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    page = await (await gw.client.get(f"/panel/sprawy/{case.number}")).text()
    assert "<dt>e-mail</dt><dd><bdi>jan@example.pl</bdi></dd>" in page
    assert "<dt>Telegram</dt><dd><bdi>4401</bdi></dd>" in page


async def test_rodo_finds_a_persons_texts_by_the_channels_own_rule_and_erases_them(
        sgw: Gateway, phone: Phone) -> None:
    gw = sgw
    await text(gw, NUMBER, "Proszę o wywóz gabarytów z ul. Lipowej 7.")
    await text(gw, OTHER, "Pies sąsiada szczeka całą noc.")
    mine = await Case.get(subject__startswith="Proszę")
    person = await Person.create(name="Halina Lipowa", roles=["citizen"],
                                 created_at=gw.clock.now())
    # linked later (the SMS channel proves nobody): the number is hers from now on
    await Identity.create(person=person, channel="sms2", address=NUMBER)
    channels = gw.services.channels

    found = await rodo.export(person.id, channels=channels)
    assert found is not None
    assert [json.loads(m["raw"])["sms_text"] for m in found["messages_they_sent"]] == [
        "Proszę o wywóz gabarytów z ul. Lipowej 7."]
    assert [c["number"] for c in found["cases"]] == [mine.number]  # by the number alone
    assert found["cases"][0]["contacts"] == [{"channel": "sms2", "address": NUMBER}]

    done = await rodo.erase(person.id, audit.Actor("test", "test"), gw.clock.now(),
                            channels=channels)
    assert done is not None and done["raw_messages"] == 1 and done["kept_cases"] == 1
    assert await RawInbound.filter(channel="sms2").count() == 1  # the other resident's
    kept = await Case.get(number=mine.number)
    assert kept.subject == rodo.ERASED and await contacts_of(kept) == set()
    assert await CaseContact.filter(address=OTHER).count() == 1


def test_the_sms_channel_reads_the_sender_of_its_stored_form() -> None:
    form = {"sms_from": "48500100200", "sms_to": "48799000111", "sms_text": "STOP",
            "sms_date": "1764750000", "MsgId": "1"}
    row = RawInbound(channel="sms", payload=json.dumps(form).encode())
    assert sms_channel.raw_senders(row, False) == {NUMBER}
    assert sms_channel.raw_senders(RawInbound(channel="sms", payload=b"\xff"), False) == set()


# --- migration 0012 ----------------------------------------------------------------------

_OLD_CASE = ('INSERT INTO "case" (number, subject, body, status, access_code_hash, '
             "requester_email, requester_chat, origin_channel, last_channel, created_at, "
             "updated_at) VALUES (?, ?, ?, 'received', 'x', ?, ?, ?, ?, ?, ?)")
_OLD_EVENT = ("INSERT INTO case_event (case_id, kind, text, public, channel, created_at) "
              "VALUES (?, 'created', '', ?, ?, ?)")


async def _case_indexes(db: Any) -> set[str]:
    if on_postgres(db):
        rows = await db.execute_query_dict(
            "SELECT indexdef AS d FROM pg_indexes WHERE tablename = 'case'")
        return {row["d"].split(" USING ", 1)[1] for row in rows}
    rows = await db.execute_query_dict('PRAGMA index_list("case")')
    found = set()
    for row in rows:
        columns = await db.execute_query_dict(f'PRAGMA index_info("{row["name"]}")')
        found.add(",".join(c["name"] for c in columns))
    return found


async def test_migration_0012_copies_the_requesters_and_keeps_every_case_and_its_history(
        empty_database_url: str, clock: FrozenClock) -> None:
    """The columns go, their contents become contacts, and nothing else moves: the cases'
    history (which cascades from the case row) and the case table's indexes survive.
    Tortoise's own RemoveField remakes a SQLite table with DROP TABLE, which with foreign
    keys on deletes every case_event and attachment by cascade."""
    store = Store(empty_database_url)
    await store.open(migrate=False)
    try:
        db = get_connection("default")
        executor = MigrationExecutor(db, {APP_LABEL: tortoise_config("")["apps"][APP_LABEL]})
        await executor.migrate([MigrationTarget(APP_LABEL, "0011_sms")])
        now = clock.now()
        for number, email, chat, channel in (
                ("UM-2026-000001", "anna@example.pl", None, "email"),
                ("UM-2026-000002", None, "4401", "telegram"),
                ("UM-2026-000003", "jan@example.pl", "4402", "email"),
                ("UM-2026-000004", None, None, "api")):
            await db.execute_query(sql(db, _OLD_CASE), [number, "Temat", "Treść", email, chat,
                                                        channel, channel, now, now])
            await db.execute_query(sql(db, _OLD_EVENT), [number, True, channel, now])
        before = await _case_indexes(db)

        await store.migrate()

        contacts = set(await CaseContact.all().values_list("case_id", "channel", "address"))
        assert contacts == {("UM-2026-000001", "email", "anna@example.pl"),
                            ("UM-2026-000002", "telegram", "4401"),
                            ("UM-2026-000003", "email", "jan@example.pl"),
                            ("UM-2026-000003", "telegram", "4402")}
        assert await Case.all().count() == 4
        assert await CaseEvent.all().count() == 4  # the history survived the column drop
        after = await _case_indexes(db)
        assert {i for i in before if "requester" not in i} == after
        assert not any("requester" in i for i in after)
        columns = (await db.execute_query_dict(
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_name = 'case'") if on_postgres(db)
            else await db.execute_query_dict('PRAGMA table_info("case")'))
        assert not {c["name"] for c in columns} & {"requester_email", "requester_chat"}
    finally:
        await store.close()
