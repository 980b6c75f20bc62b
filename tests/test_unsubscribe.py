"""Issue #19: one-click unsubscribe (RFC 8058) on announcements, digests and notices.

The mail, as a real SMTP relay receives it, carries `List-Unsubscribe` (an https link with
a signed token naming the person, the notice type and the channel),
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` and `List-Id`, all covered by the
DKIM signature; one POST to the link — no sign-in, no page — turns that type off for that
person on mail, and the next notice of that type goes by their next channel. Answers about
a person's own case and sign-in links carry no such header.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from urllib.parse import urlsplit

import dkim
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.jobs import run_job
from handlers import unsubscribe
from store.models import Outbox, Person
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smtp_relay import Sink
from tests.mailauth import KEYS, SELECTOR, dns_for
from tests.test_school import hook

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def gwr(aiohttp_client, settings: Settings, botapi: BotApiDouble, clock,  # type: ignore[no-untyped-def]
              relay: tuple[Sink, int]) -> Gateway:
    """The gateway relaying its mail to the sink, signing it with the test key."""
    relayed = settings.model_copy(update={
        "smtp_relay": f"127.0.0.1:{relay[1]}", "dkim_selector": SELECTOR.decode(),
        "dkim_key_file": str(KEYS / "test-only.key")})
    client = await aiohttp_client(create_app(relayed, clock=clock, run_workers=False))
    return Gateway(client, relayed, botapi, clock)


def relayed(sink: Sink) -> list[tuple[bytes, EmailMessage]]:
    return [(raw, email.message_from_bytes(raw, policy=policy.default))  # type: ignore[misc]
            for _, _, _, raw in sink.received]


def unsubscribe_path(mail: EmailMessage) -> str:
    [link] = re.findall(r"<([^>]+)>", mail["List-Unsubscribe"])
    assert link.startswith("http") and "/unsubscribe/" in link
    return urlsplit(link).path


async def mail_first_parent(gw: Gateway, chat: int) -> int:
    """A parent of Hania (1a) with Telegram linked and mail first in their order."""
    parent = await gw.linked(chat, f"Rodzic {chat}", ["parent"], email="rodzic@example.pl")
    resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
        "id": "S1", "name": "Hania", "class": "1a", "guardians": [parent]})
    assert resp.status == 201, await resp.text()
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"channel_order": ["email", "telegram"]})
    assert resp.status == 200, await resp.text()
    return parent


async def remark(gw: Gateway, n: int) -> None:
    resp = await hook(gw, "remarks", [{"id": f"R{n}", "student": "S1", "kind": "positive",
                                       "text": f"Pomoc koledze {n}", "teacher": "p. Nowak",
                                       "recorded_at": "2026-11-25T09:00:00+01:00"}], f"rm-{n}")
    assert resp.status == 200, await resp.text()
    await gw.drain()


async def test_a_notice_carries_signed_one_click_headers_and_the_post_turns_it_off(
        gwr: Gateway, relay: tuple[Sink, int]) -> None:
    parent = await mail_first_parent(gwr, 5101)
    telegram_before = len(gwr.botapi.texts_to(5101))
    await remark(gwr, 1)
    [(raw, mail)] = relayed(relay[0])
    assert mail["To"] == "rodzic@example.pl"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == "<remarks.milanowek.example>"
    path = unsubscribe_path(mail)
    # covered by the signature (RFC 8058 section 4): verified, and failing once changed
    assert dkim.verify(raw, dnsfunc=dns_for("milanowek.example"))
    forged = raw.replace(path.encode(), path.encode()[:-4] + b"AAAA", 1)
    assert not dkim.verify(forged, dnsfunc=dns_for("milanowek.example"))

    # a mail scanner opening the link changes nothing; the page has the button
    page = await gwr.client.get(path)
    assert page.status == 200
    text = await page.text()
    assert "Wypisz mnie" in text and "Unsubscribe" in text and "uwagi" in text
    assert "remarks@email" not in ((await Person.get(id=parent)).notices or {})

    # RFC 8058 section 3.1: a POST with this body and nothing else (no cookie, no session)
    done = await gwr.client.post(path, data="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert done.status == 200 and "Wypisano" in await done.text()
    assert (await Person.get(id=parent)).notices["remarks@email"] == "off"
    again = await gwr.client.post(path, data="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status == 200  # repeated: still off, still fine

    # the next remark does not go by mail: it goes by the parent's next channel
    await remark(gwr, 2)
    assert len(relay[0].received) == 1
    assert "Pomoc koledze 2" in gwr.botapi.texts_to(5101)[-1]
    assert len(gwr.botapi.texts_to(5101)) == telegram_before + 1
    # other types still come by mail
    resp = await hook(gwr, "homework", [{"id": "H1", "class": "1a", "subject": "plastyka",
                                         "kind": "homework", "title": "Laurka",
                                         "due": "2026-11-30"}], "hw-1")
    assert resp.status == 200
    await gwr.drain()
    assert relayed(relay[0])[-1][1]["List-Id"] == "<homework.milanowek.example>"


async def test_a_digest_and_an_announcement_carry_the_headers_a_case_answer_does_not(
        gwr: Gateway, relay: tuple[Sink, int]) -> None:
    parent = await mail_first_parent(gwr, 5102)
    resp = await gwr.client.patch(f"/api/v1/people/{parent}", headers=gwr.admin,
                                  json={"notices": {"remarks": "digest"}, "digest_hour": 18})
    assert resp.status == 200
    await remark(gwr, 3)
    gwr.clock.set(gwr.clock.now().replace(hour=17, minute=1))  # 18:01 in Milanówek
    assert (await run_job(gwr.services, "school-digest"))["digests"] == 1
    await gwr.drain()
    [(raw, digest)] = relayed(relay[0])
    assert digest["List-Id"] == "<digest.milanowek.example>"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert dkim.verify(raw, dnsfunc=dns_for("milanowek.example"))
    token = unsubscribe_path(digest).rsplit("/", 1)[1]
    assert unsubscribe.read(gwr.services, token) == unsubscribe.OptOut(parent, "digest", "email")

    await gwr.person("Cezary", ["staff"], units=["szkola-1"], email="cezary@milanowek.example")
    resp = await gwr.client.post("/api/v1/announcements", headers=gwr.admin, json={
        "title": "Zebranie", "body": "Jutro o 10:00.", "audience": {"units": ["szkola-1"]}})
    assert resp.status == 202, await resp.text()
    await run_job(gwr.services, "scheduled-announcements")
    await gwr.drain()
    announcement = relayed(relay[0])[-1][1]
    assert announcement["Subject"] == "Zebranie"
    assert announcement["List-Id"] == "<announcements.milanowek.example>"
    unsubscribe_path(announcement)

    # the answer to a person's own case is no list: nothing to unsubscribe from
    resp = await gwr.client.post("/api/v1/cases", json={"subject": "Dziura", "body": "Tu.",
                                                        "email": "jan@example.pl"})
    assert resp.status == 201
    await gwr.drain()
    confirmation = relayed(relay[0])[-1][1]
    assert confirmation["To"] == "jan@example.pl"
    assert confirmation["List-Unsubscribe"] is None and confirmation["List-Id"] is None


async def test_forged_damaged_or_orphaned_tokens_change_nothing(gw: Gateway) -> None:
    parent = await gw.person("Jan", ["parent"], email="jan@example.pl")
    good = unsubscribe.token(gw.services, parent, "grades", "email")
    forged = unsubscribe.token(gw.services, parent, "grades", "email")[:-3] + "abc"
    other_key = unsubscribe._serializer(gw.services).__class__(
        "another-secret", salt="unsubscribe").dumps([parent, "grades", "email"])
    for token in (forged, other_key, "nonsense", good.split(".")[0]):
        resp = await gw.client.post(f"/unsubscribe/{token}", data="List-Unsubscribe=One-Click",
                                    headers=ONE_CLICK)
        assert resp.status == 404, token
        assert (await gw.client.get(f"/unsubscribe/{token}")).status == 404
    # signed by us, but for a type nobody can turn off, or a person who is gone
    for token in (unsubscribe.token(gw.services, parent, "cases", "email"),
                  unsubscribe.token(gw.services, parent + 99, "grades", "email")):
        resp = await gw.client.post(f"/unsubscribe/{token}")
        assert resp.status == 404
    assert not (await Person.get(id=parent)).notices
    assert not await Outbox.filter(person_id=parent).count()
