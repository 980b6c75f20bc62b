"""Signing a staff member in to the console the way a person does: the form, the mailed
(or Telegram) link, the button. Shared by the HTTP tests and the browser tests."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from tests.conftest import Gateway

LINK = re.compile(r"https?://[^/\s\"]+(/panel/wejscie/[A-Za-z0-9_-]+)")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]*)"', html)
    assert found, html[:2000]
    return found.group(1)


async def staff_member(gw: Gateway, email: str = "urzedniczka@milanowek.example",
                       roles: list[str] | None = None, units: list[str] | None = None,
                       name: str = "Krystyna Urzędniczka") -> int:
    return await gw.person(name, roles or ["staff"], email=email,
                           units=units if units is not None else ["urzad"])


def mailed_link(gw: Gateway, email: str) -> str:
    for message in reversed(gw.sent_mail()):
        if message["To"] == email and "panel" in str(message["Subject"]):
            found = LINK.search(message.get_body(("plain",)).get_content())
            if found:
                return found.group(1)
    raise AssertionError(f"no sign-in link was mailed to {email}")


async def sign_in(gw: Gateway, email: str, client: TestClient | None = None) -> TestClient:
    client = client or gw.client
    html = await (await client.get("/panel/wejscie")).text()
    resp = await client.post("/panel/wejscie", data={"email": email, "csrf": csrf_of(html)})
    assert resp.status == 200, await resp.text()
    await gw.drain()
    link = mailed_link(gw, email)
    html = await (await client.get(link)).text()
    resp = await client.post(link, data={"csrf": csrf_of(html)}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return client
