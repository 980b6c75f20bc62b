"""Issue #18, faults 5 and 6 and the sign-in's `dalej`: strangers must not lock residents
or staff out, limits count the real client behind a trusted proxy, and the sign-in form
answers alike for staff and for anyone else.

Several clients are told apart by their real source addresses: Linux answers on the
whole of 127.0.0.0/8, so a client bound to 127.0.0.5 is another peer to the server."""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from gateway.app import create_app
from gateway.config import Settings
from gateway.keys import HEALTH
from store.models import AuditEntry, Outbox, SignInLink
from tests.conftest import Gateway
from tests.panel import csrf_of, mailed_link, staff_member

STAFF_EMAIL = "urzedniczka@milanowek.example"


async def client_from(gw: Gateway, aiohttp_client: Any, address: str) -> TestClient:
    """Another browser, on another source address."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    return await aiohttp_client(gw.client.server, connector=connector)


async def anonymous_case(gw: Gateway) -> tuple[str, str]:
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Latarnia", "body": "Nie świeci."})
    created = await resp.json()
    return created["number"], created["access_code"]


# --- fault 5: access codes ---------------------------------------------------------------------


async def test_wrong_codes_from_many_addresses_leave_the_right_code_working(
        gw: Gateway, aiohttp_client: Any) -> None:
    number, code = await anonymous_case(gw)
    guessers = [await client_from(gw, aiohttp_client, f"127.0.0.{n}") for n in range(2, 8)]
    for n, guesser in enumerate(guessers * 3):  # 18 failures on the case, 3 per address
        resp = await guesser.get(f"/api/v1/cases/{number}", params={"code": f"ZZZZ-ZZZZ-ZZZZ-{n:04d}"})
        assert resp.status in (404, 429)
    resident = await client_from(gw, aiohttp_client, "127.0.0.20")
    resp = await resident.get(f"/api/v1/cases/{number}", params={"code": code})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["number"] == number
    # the residents' page: the code form and the mail's link alike
    page = await client_from(gw, aiohttp_client, "127.0.0.21")
    resp = await page.post(f"/sprawy/{number}/kod", data={"code": code})
    assert resp.status == 200 and "Latarnia" in await resp.text()
    # a guesser is limited by its own failures: five more wrong codes, then it waits
    # even with the right code, while nobody else does
    statuses = []
    for n in range(6):
        resp = await guessers[0].get(f"/api/v1/cases/{number}", params={"code": f"YYYY-{n:04d}-AAAA-BBBB"})
        statuses.append(resp.status)
    assert statuses[-1] == 429
    assert (await guessers[0].get(f"/api/v1/cases/{number}", params={"code": code})).status == 429
    assert (await resident.get(f"/api/v1/cases/{number}", params={"code": code})).status == 200


# --- fault 5: sign-in requests -----------------------------------------------------------------


async def ask_for_link(client: TestClient, email: str, dalej: str = "") -> aiohttp.ClientResponse:
    html = await (await client.get("/panel/wejscie", params={"dalej": dalej} if dalej else None)).text()
    return await client.post("/panel/wejscie", data={"email": email, "csrf": csrf_of(html),
                                                     "dalej": dalej})


async def use_link(client: TestClient, link: str) -> aiohttp.ClientResponse:
    html = await (await client.get(link)).text()
    return await client.post(link, data={"csrf": csrf_of(html)}, allow_redirects=False)


def mails_to(gw: Gateway, email: str) -> int:
    return sum(1 for m in gw.sent_mail() if m["To"] == email)


async def test_a_strangers_sign_in_requests_neither_flood_nor_lock_out_the_staff_member(
        gw: Gateway, aiohttp_client: Any) -> None:
    await staff_member(gw)
    stranger = await client_from(gw, aiohttp_client, "127.0.0.66")
    answers = []
    for _ in range(3):
        resp = await ask_for_link(stranger, STAFF_EMAIL)
        answers.append((resp.status, await resp.text()))
    await gw.drain()
    # the staff member asks in her own browser, twice, and opens the mail she has
    clerk = await client_from(gw, aiohttp_client, "127.0.0.7")
    for _ in range(2):
        resp = await ask_for_link(clerk, STAFF_EMAIL)
        answers.append((resp.status, await resp.text()))
    await gw.drain()
    assert mails_to(gw, STAFF_EMAIL) == 1
    assert {status for status, _ in answers} == {200}
    assert all("wysłaliśmy" in text for _, text in answers)
    resp = await use_link(clerk, mailed_link(gw, STAFF_EMAIL))
    assert resp.status == 303 and resp.headers["Location"] == "/panel/"
    assert (await clerk.get("/panel/sprawy", allow_redirects=False)).status == 200
    # the stranger, who never saw the mail, has nothing to open; a browser that did not
    # ask for a link cannot use one
    late = await client_from(gw, aiohttp_client, "127.0.0.8")
    gw.clock.advance(minutes=6)  # past the pause between two mails
    await ask_for_link(clerk, STAFF_EMAIL)
    await gw.drain()
    assert mails_to(gw, STAFF_EMAIL) == 2
    assert (await use_link(late, mailed_link(gw, STAFF_EMAIL))).status == 403
    assert (await use_link(clerk, mailed_link(gw, STAFF_EMAIL))).status == 303


async def test_a_link_mailed_first_still_works_while_strangers_keep_asking(
        gw: Gateway, aiohttp_client: Any) -> None:
    await staff_member(gw)
    clerk = await client_from(gw, aiohttp_client, "127.0.0.7")
    await ask_for_link(clerk, STAFF_EMAIL)
    await gw.drain()
    link = mailed_link(gw, STAFF_EMAIL)
    for n in range(10):  # ten strangers at once
        stranger = await client_from(gw, aiohttp_client, f"127.0.1.{n + 1}")
        assert (await ask_for_link(stranger, STAFF_EMAIL)).status == 200
    await gw.drain()
    assert mails_to(gw, STAFF_EMAIL) == 1
    assert (await use_link(clerk, link)).status == 303


# --- fault 6: the same work for any address -------------------------------------------------


class Statements(logging.Handler):
    """The SQL the ORM sends, without its values (tortoise logs each at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        query = record.args[0] if isinstance(record.args, tuple) and record.args else record.msg
        self.seen.append(re.sub(r"'[^']*'|\$\d+|\b\d+\b", "?", str(query)))


async def test_the_sign_in_answer_does_the_same_store_work_for_staff_and_strangers(
        gw: Gateway, aiohttp_client: Any) -> None:
    await staff_member(gw)
    await gw.person("Mieszkanka", ["citizen"], email="ala@example.org")
    logger = logging.getLogger("tortoise.db_client")
    runs: dict[str, list[str]] = {}
    for n, email in enumerate((STAFF_EMAIL, "nikt@example.org", "ala@example.org")):
        browser = await client_from(gw, aiohttp_client, f"127.0.2.{n + 1}")
        html = await (await browser.get("/panel/wejscie")).text()
        statements, level = Statements(), logger.level
        logger.addHandler(statements)
        logger.setLevel(logging.DEBUG)
        try:
            resp = await browser.post("/panel/wejscie", data={"email": email, "csrf": csrf_of(html)})
        finally:
            logger.removeHandler(statements)
            logger.setLevel(level)
        assert resp.status == 200
        runs[email] = statements.seen
    assert runs[STAFF_EMAIL] == runs["nikt@example.org"] == runs["ala@example.org"]
    # the answer went before anything was decided about the address: no link, no mail yet
    assert await SignInLink.all().count() == 0 and await Outbox.all().count() == 0
    await gw.drain()
    assert mails_to(gw, STAFF_EMAIL) == 1 and len(gw.sent_mail()) == 1


# --- fault 5: the client behind a reverse proxy ---------------------------------------------------


@pytest.fixture
async def proxied(aiohttp_client: Any, settings: Settings, botapi: Any, clock: Any) -> Gateway:
    """The gateway behind a reverse proxy on 127.0.0.1 (the test client's address)."""
    behind = settings.model_copy(update={"trusted_proxies": "127.0.0.1, 10.0.0.0/8"})
    client = await aiohttp_client(create_app(behind, clock=clock, run_workers=False))
    return Gateway(client, behind, botapi, clock)


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
        proxied: Gateway, aiohttp_client: Any) -> None:
    gw = proxied
    number, code = await anonymous_case(gw)

    async def guess(client: TestClient, forwarded: str, n: int, right: bool = False) -> int:
        resp = await client.get(f"/api/v1/cases/{number}",
                                params={"code": code if right else f"QQQQ-QQQQ-QQQQ-{n:04d}"},
                                headers={"X-Forwarded-For": forwarded})
        return resp.status

    # through the proxy: one real client, whatever it writes to the left of the proxy's entry
    spoofed = [await guess(gw.client, f"198.51.100.{n}, 203.0.113.5", n) for n in range(6)]
    assert spoofed[0] == 404 and spoofed[-1] == 429
    assert await guess(gw.client, "1.2.3.4, 203.0.113.5", 0, right=True) == 429
    # another client behind the same proxy (and a chain of two trusted proxies) is not held
    assert await guess(gw.client, "203.0.113.6, 10.1.2.3", 0, right=True) == 200
    # straight from an untrusted peer the header is the client's own words: ignored
    direct = await client_from(gw, aiohttp_client, "127.0.0.9")
    statuses = [await guess(direct, f"192.0.2.{n}", n) for n in range(6)]
    assert statuses[-1] == 429
    # the audit names the real client too
    await staff_member(gw)
    html = await (await gw.client.get("/panel/wejscie")).text()
    await gw.client.post("/panel/wejscie", data={"email": STAFF_EMAIL, "csrf": csrf_of(html)},
                         headers={"X-Forwarded-For": "203.0.113.77"})
    await gw.drain()
    link = mailed_link(gw, STAFF_EMAIL)
    html = await (await gw.client.get(link)).text()
    resp = await gw.client.post(link, data={"csrf": csrf_of(html)}, allow_redirects=False,
                                headers={"X-Forwarded-For": "203.0.113.77"})
    assert resp.status == 303
    entry = await AuditEntry.get(action="console.sign_in")
    assert entry.address == "203.0.113.77"


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", None, "127.0.0.1"),  # trusted proxy, no header: the proxy itself
    ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
    ("127.0.0.1", "evil, 203.0.113.5", "203.0.113.5"),  # the client's own words ignored
    ("127.0.0.1", "203.0.113.5, 10.0.0.2, 10.0.0.3", "203.0.113.5"),  # a chain of proxies
    ("127.0.0.1", "203.0.113.5:4711", "203.0.113.5"),  # a proxy that adds the port
    ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
    ("127.0.0.1", "::ffff:203.0.113.5", "203.0.113.5"),
    ("127.0.0.1", "not-an-address, 10.0.0.2", "10.0.0.2"),  # nothing believable past it
    ("127.0.0.1", "10.0.0.2, 10.0.0.3", "10.0.0.2"),  # all proxies: the farthest one
    ("192.0.2.1", "203.0.113.5", "192.0.2.1"),  # an untrusted peer's header is ignored
])
def test_the_client_address_rules(peer: str, forwarded: str | None, expected: str) -> None:
    from gateway.client import client_address
    from gateway.keys import SETTINGS

    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    app: Any = {SETTINGS: Settings(_env_file=None, trusted_proxies="127.0.0.1,10.0.0.0/8")}  # type: ignore[call-arg]

    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return (peer, 50000) if name == "peername" else default

    request = make_mocked_request("GET", "/", headers=headers, app=app, transport=Transport())
    assert client_address(request) == expected


def test_a_malformed_trusted_proxy_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="EMIL_TRUSTED_PROXIES"):
        Settings(_env_file=None, trusted_proxies="10.0.0.0/8, proxy.example")  # type: ignore[call-arg]


# --- fault 13: `dalej` ----------------------------------------------------------------------------


async def test_the_sign_in_link_brings_the_person_back_where_they_were_going(
        gw: Gateway, aiohttp_client: Any) -> None:
    await staff_member(gw)
    clerk = await client_from(gw, aiohttp_client, "127.0.0.7")
    resp = await clerk.get("/panel/sprawy?status=open", allow_redirects=False)
    assert resp.status == 303
    form = resp.headers["Location"]
    html = await (await clerk.get(form)).text()
    await clerk.post("/panel/wejscie", data={"email": STAFF_EMAIL, "csrf": csrf_of(html),
                                             "dalej": "/panel/sprawy?status=open"})
    await gw.drain()
    resp = await use_link(clerk, mailed_link(gw, STAFF_EMAIL))
    assert resp.status == 303 and resp.headers["Location"] == "/panel/sprawy?status=open"
    # only a console path is a place to go back to
    for elsewhere in ("https://evil.example/", "//evil.example/panel/", "/panel/\\evil",
                      "/sprawy/x", "/panel/\r\nSet-Cookie: x=y"):
        other = await client_from(gw, aiohttp_client, "127.0.0.8")
        gw.clock.advance(minutes=6)
        await ask_for_link(other, STAFF_EMAIL, dalej=elsewhere)
        await gw.drain()
        resp = await use_link(other, mailed_link(gw, STAFF_EMAIL))
        assert resp.status == 303 and resp.headers["Location"] == "/panel/", elsewhere


async def test_a_form_stored_before_a_restart_is_answered_by_the_running_worker(
        gw: Gateway, aiohttp_client: Any, settings: Settings, clock: Any) -> None:
    """The answer goes before the work, so the work must survive a crash: the form is a
    row, and the supervised sign-in worker of the next start answers it."""
    import asyncio

    await staff_member(gw)
    resp = await ask_for_link(gw.client, STAFF_EMAIL)
    assert resp.status == 200
    await gw.client.close()  # "crashed" before anything handled the form
    running = await aiohttp_client(create_app(settings, clock=clock, run_workers=True))
    restarted = Gateway(running, settings, gw.botapi, clock)
    for _ in range(200):  # the worker starts within a second of waking; wait up to 20 s
        if mails_to(restarted, STAFF_EMAIL):
            break
        await asyncio.sleep(0.1)
    assert mails_to(restarted, STAFF_EMAIL) == 1
    assert "sign-in" in running.app[HEALTH].parts
