"""Issue #19, "one channel shape, registered once": a fourth channel, defined here and
registered at assembly, carries a case in and a notice out with no other file edited —
the inbox reads its rows with its reader, the router asks it whether its sender is
proven (a channel that proves nothing gets a stranger's answers, never the identity's
person), the fan-out reaches a person on it, and its own lane sends the notice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import Settings
from handlers import fanout
from handlers.cases import contacts_of
from handlers.channels import Channel, Channels, Outgoing
from handlers.message import InboundMessage
from store.clock import FrozenClock
from store.models import Case, Identity, Outbox, Person, RawInbound
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble

PIGEON = "+48500100200"


class PigeonLoft:
    """The fake channel's far end: what its lane sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def texts_to(self, address: str) -> list[str]:
        return [payload["text"] for to, payload in self.sent if to == address]


class PigeonSender:
    channel = "pigeon"

    def __init__(self, loft: PigeonLoft) -> None:
        self.loft = loft

    async def send(self, row: Outbox) -> None:
        self.loft.sent.append((row.recipient, row.payload))


def read_pigeon(row: RawInbound, ctx: Any) -> tuple[InboundMessage | None, str]:
    """A stored pigeon note: `{"from": ..., "text": ...}`; a leading "/word" is a command."""
    note = json.loads(bytes(row.payload))
    text = note["text"].strip()
    command, args = None, []
    if text.startswith("/"):
        word, *args = text[1:].split()
        command = word.lower()
    return InboundMessage(channel="pigeon", address=note["from"], text=text, command=command,
                          args=args, inbound_id=row.id), ""


async def pigeon_ring(msg: InboundMessage) -> str | None:
    """This pigeon proves its sender by the ring on its leg (the test's stand-in)."""
    return "ring"


def pigeon(loft: PigeonLoft, *, proves: bool) -> Channel:
    return Channel(
        name="pigeon",
        read=read_pigeon,
        templates=("pigeon", "telegram"),  # no pigeon templates: the documented fallback
        outgoing=lambda: Outgoing(PigeonSender(loft)),
        normalise=lambda address: address if address.startswith("+48") else None,
        prove=pigeon_ring if proves else None,
    )


@pytest.fixture
def loft() -> PigeonLoft:
    return PigeonLoft()


async def pigeon_gateway(aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
                         clock: FrozenClock, loft: PigeonLoft, *, proves: bool) -> Gateway:
    app = create_app(settings, clock=clock, run_workers=False,
                     channels=[pigeon(loft, proves=proves)])
    return Gateway(await aiohttp_client(app), settings, botapi, clock)


async def fly(gw: Gateway, text: str, n: int) -> None:
    """A note arrives: stored raw (as every channel's intake does), then handled."""
    await RawInbound.create(channel="pigeon", external_id=f"note-{n}",
                            payload=json.dumps({"from": PIGEON, "text": text}).encode(),
                            received_at=gw.clock.now())
    await gw.drain()


async def resident(gw: Gateway) -> Person:
    person = await Person.create(name="Zofia Gołębiowska", roles=["citizen"],
                                 created_at=gw.clock.now())
    await Identity.create(person=person, channel="pigeon", address=PIGEON)
    return person


async def open_case(gw: Gateway) -> Case:
    for n, text in enumerate(["/sprawa", "Dziura w chodniku",
                              "Na ul. Kościuszki 12 brakuje płyty chodnikowej."]):
        await fly(gw, text, n)
    return await Case.get()


async def test_a_fourth_channel_is_one_registration(aiohttp_client, settings: Settings,  # type: ignore[no-untyped-def]
                                                    botapi: BotApiDouble, clock: FrozenClock,
                                                    loft: PigeonLoft) -> None:
    gw = await pigeon_gateway(aiohttp_client, settings, botapi, clock, loft, proves=False)
    registry = gw.services.channels
    assert isinstance(registry, Channels)
    assert registry.names == ("telegram", "email", "pigeon")  # the one list, in order
    assert registry["pigeon"].normalise("500") is None

    person = await resident(gw)
    case = await open_case(gw)
    assert (case.origin_channel, case.last_channel) == ("pigeon", "pigeon")
    assert "Kościuszki 12" in case.body
    # the pigeon proves nothing: the note is a stranger's, not filed in Zofia's name
    assert case.person_id is None
    # the requester is reached where they wrote from, on that channel (no Telegram chat)
    assert await contacts_of(case) == {("pigeon", PIGEON)}
    replies = loft.texts_to(PIGEON)
    assert len(replies) == 3 and case.number in replies[-1]
    assert not await RawInbound.filter(status="pending").exists()
    assert botapi.texts_to(int(PIGEON[1:])) == []  # nothing went out by Telegram instead

    await fanout.fan_out(gw.services, [person], fanout.Notice(
        kind="messages", template="school_message", key="msg:pigeon",
        context={"about": {"class_name": "3a"}, "title": "Wycieczka", "body": "W piątek.",
                 "sender": "wychowawczyni"}), gw.clock.now())
    metrics = await (await gw.client.get("/metrics")).text()
    assert 'emil_outbox_depth{channel="pigeon"} 1.0' in metrics  # its lane's queue is watched
    await gw.drain()
    row = await Outbox.get(idempotency_key__startswith="msg:pigeon")
    assert (row.channel, row.recipient, row.status) == ("pigeon", PIGEON, "sent")
    assert "Wycieczka" in loft.texts_to(PIGEON)[-1]


async def test_a_channel_that_proves_its_sender_files_in_their_name(
        aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
        clock: FrozenClock, loft: PigeonLoft) -> None:
    gw = await pigeon_gateway(aiohttp_client, settings, botapi, clock, loft, proves=True)
    person = await resident(gw)
    case = await open_case(gw)
    assert case.person_id == person.id
    assert (await Person.get(id=person.id)).last_channel == "pigeon"


async def test_channel_order_preferences_name_registered_channels(
        aiohttp_client, settings: Settings, botapi: BotApiDouble,  # type: ignore[no-untyped-def]
        clock: FrozenClock, loft: PigeonLoft) -> None:
    gw = await pigeon_gateway(aiohttp_client, settings, botapi, clock, loft, proves=True)
    person_id = await gw.person("Zofia Gołębiowska")
    resp = await gw.client.patch(f"/api/v1/people/{person_id}", headers=gw.admin,
                                 json={"channel_order": ["pigeon", "email"]})
    assert resp.status == 200, await resp.text()
    resp = await gw.client.patch(f"/api/v1/people/{person_id}", headers=gw.admin,
                                 json={"channel_order": ["smoke-signal"]})
    assert resp.status == 400
    assert "telegram, email, pigeon" in await resp.text()  # what may be named: the registry


def test_a_channel_is_registered_once() -> None:
    loft = PigeonLoft()
    registry = Channels([pigeon(loft, proves=False)])
    with pytest.raises(ValueError, match="pigeon"):
        registry.register(pigeon(loft, proves=True))


async def test_an_address_on_a_channel_no_longer_registered_is_passed_over(gw: Gateway) -> None:
    """A pigeon identity and order left from when the pigeon was registered: the notice
    goes by the channels there are, and nothing fails."""
    person_id = await gw.linked(4190, "Zofia Gołębiowska")
    await Identity.create(person_id=person_id, channel="pigeon", address=PIGEON)
    await Person.filter(id=person_id).update(channel_order=["pigeon", "telegram"])
    outcome = await fanout.fan_out(gw.services, [await Person.get(id=person_id)], fanout.Notice(
        kind="messages", template="school_message", key="msg:gone",
        context={"about": {"class_name": "3a"}, "title": "Wycieczka", "body": "W piątek.",
                 "sender": "wychowawczyni"}), gw.clock.now())
    assert outcome.queued == 1
    await gw.drain()
    assert "Wycieczka" in gw.botapi.texts_to(4190)[-1]
    assert not await Outbox.filter(channel="pigeon").exists()
