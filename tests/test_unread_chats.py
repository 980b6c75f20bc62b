"""Nothing accepted ends in silence, on every channel (#18's rule, closed as a class).

A Telegram update or an incoming SMS the gateway acknowledged but could not handle — its
reader rejected it, or its handling failed for good — used to end as `failed` with an
apology: nobody at the office ever saw it. Mail already went to the clerks' queue; now
every registered channel's input does: set aside for a clerk, its sender told "we have
passed it to the office" on the channel it came by, the original downloadable as that
channel stores it, and a case opened from it reaches its sender on that channel.
"""

from __future__ import annotations

import json

import pytest

from handlers import router
from handlers.cases import contacts_of
from store.models import Case, RawInbound
from tests.conftest import Gateway
from tests.doubles.smsapi import SmsApiDouble
from tests.panel import csrf_of, sign_in, staff_member
from tests.sms import PHONE, say, sms_gateway


@pytest.fixture
def crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message's handling fails for good (a bug, not a store outage)."""
    async def crashes(ctx, msg, person):  # type: ignore[no-untyped-def]
        raise ValueError("a bug in the handler")

    monkeypatch.setattr(router, "route", crashes)


async def test_a_telegram_update_whose_handling_fails_reaches_a_clerk(
        gw: Gateway, crashing: None, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = await gw.tg(700, "Dziura w jezdni na ul. Kościuszki")
    [reply] = replies
    assert "przekazaliśmy" in reply and "Coś poszło nie tak" not in reply
    row = await RawInbound.get()
    assert row.status == "unread" and row.note.startswith("ref ")
    assert row.note[4:] in reply  # the reference the office can look up
    # a clerk sees it, downloads the update as it came, and opens a case from it
    monkeypatch.undo()
    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    page = await (await gw.client.get("/panel/nieodczytane")).text()
    assert "Dziura w jezdni" in page and f"/panel/nieodczytane/{row.id}" in page
    resp = await gw.client.get(f"/panel/nieodczytane/{row.id}/oryginal")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    assert ".json" in resp.headers["Content-Disposition"]
    assert json.loads(await resp.read())["message"]["text"] == "Dziura w jezdni na ul. Kościuszki"
    detail = await (await gw.client.get(f"/panel/nieodczytane/{row.id}")).text()
    resp = await gw.client.post(f"/panel/nieodczytane/{row.id}/sprawa", allow_redirects=False,
                                data={"csrf": csrf_of(detail), "temat": "Dziura w jezdni",
                                      "tresc": "Dziura na ul. Kościuszki."})
    assert resp.status == 303
    case = await Case.get()
    assert await contacts_of(case) == {("telegram", "700")}
    assert case.origin_channel == "telegram"
    await gw.drain()
    assert any(case.number in text for text in gw.botapi.texts_to(700))


async def test_an_unreadable_telegram_update_reaches_a_clerk_too(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from bots import inbound

    def broken(row, ctx, bot):  # type: ignore[no-untyped-def]
        raise KeyError("a field Telegram added this week")

    monkeypatch.setattr(inbound, "read_stored", broken)
    [reply] = await gw.tg(701, "Pytanie o podatek", language="en")
    assert "passed it to" in reply  # in the sender's language
    row = await RawInbound.get()
    assert row.status == "unread" and row.summary["address"] == "701"


async def test_a_group_chat_is_set_aside_unanswered(gw: Gateway, crashing: None) -> None:
    """A group's message is not a person's request to us: kept for a clerk, not answered
    into the group."""
    from tests.doubles.botapi import message_update

    update = message_update(-100200, "hej", user_id=42)
    update["message"]["chat"]["type"] = "group"
    await gw.update(update)
    row = await RawInbound.get()
    assert row.status == "unread" and row.summary["answered"] is False
    assert gw.botapi.texts_to(-100200) == []


async def test_an_sms_whose_handling_fails_reaches_a_clerk(
        aiohttp_client, settings, botapi, clock, smsapi: SmsApiDouble,  # type: ignore[no-untyped-def]
        crashing: None) -> None:
    gw = await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi)
    [answer] = await say(gw, smsapi, "Kiedy odbior smieci?")
    assert "przekazalismy" in answer.lower() or "przekazaliśmy" in answer
    row = await RawInbound.get()
    assert row.status == "unread" and row.summary["address"] == PHONE
    resp = await gw.client.get(f"/panel/nieodczytane/{row.id}/oryginal",
                               allow_redirects=False)
    assert resp.status == 303  # the original is staff's only: to the sign-in page


def test_every_channel_of_the_town_sets_aside_what_it_cannot_handle() -> None:
    """The class: a channel without a `glance` would fall back to an apology and leave
    its input where no person looks."""
    from gateway.app import build_channels
    from gateway.config import Settings

    settings = Settings(_env_file=None, telegram_token="1:T", sms_token="t")  # type: ignore[call-arg]
    registry = list(build_channels(settings))
    assert {"email", "telegram", "sms"} <= {channel.name for channel in registry}
    for channel in registry:
        name = channel.name
        assert channel.glance is not None, name
        assert channel.raw_file[0] and "/" in channel.raw_file[1], name
