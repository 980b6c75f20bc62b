"""Issue #13 (first part): the resident's case page. The mail's link opens it, the code
leaves the address bar, the resident reads the history and adds a message that the
clerk then sees."""

from __future__ import annotations

import re

from aiohttp import FormData

from store.models import Attachment, CaseEvent
from tests.conftest import Gateway, make_mail


async def opened_from_the_mail(gw: Gateway) -> tuple[str, str]:
    [confirmation] = await gw.mail(make_mail("Dziura w chodniku", "ul. Kościuszki 5"))
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    return link, link.split("?")[0]


async def test_the_mails_link_opens_the_page_and_drops_the_code(gw: Gateway) -> None:
    link, page = await opened_from_the_mail(gw)
    resp = await gw.client.get(link, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == page
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=" + page in cookie
    resp = await gw.client.get(page)  # the client keeps the cookie
    html = await resp.text()
    assert resp.status == 200 and '<html lang="pl">' in html
    assert "Dziura w chodniku" in html and "przyjęta" in html
    assert "code=" not in html  # nothing on the page repeats the code
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    english = await (await gw.client.get(page + "?lang=en")).text()
    assert '<html lang="en">' in english and "received" in english


async def test_a_message_from_the_page_reaches_the_case(gw: Gateway) -> None:
    link, page = await opened_from_the_mail(gw)
    await gw.client.get(link)
    html = await (await gw.client.get(page)).text()
    csrf = re.search(r'name="csrf" value="(\w+)"', html).group(1)
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("message", "Dosyłam zdjęcie dziury.")
    form.add_field("attachment", b"\x89PNG-bytes", filename="dziura.png",
                   content_type="image/png")
    resp = await gw.client.post(page + "/wiadomosc", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("?dodano=1")
    number = page.rsplit("/", 1)[1]
    event = await CaseEvent.get(case_id=number, kind="message")
    assert event.text == "Dosyłam zdjęcie dziury." and event.channel == "web"
    assert (await Attachment.get(case_id=number)).filename == "dziura.png"
    # the clerk sees it in the case's history (the API the console reads)
    resp = await gw.client.get(f"/api/v1/cases/{number}", headers=gw.admin)
    assert "Dosyłam zdjęcie dziury." in [h["text"] for h in (await resp.json())["history"]]
    # without the token, nothing is added
    resp = await gw.client.post(page + "/wiadomosc", data={"message": "CSRF"},
                                allow_redirects=False)
    assert resp.status == 403
    assert await CaseEvent.filter(kind="message").count() == 1


async def test_without_the_code_the_page_asks_and_refuses_wrong_codes(gw: Gateway) -> None:
    _, page = await opened_from_the_mail(gw)
    html = await (await gw.client.get(page)).text()
    assert '<label for="code">Kod dostępu</label>' in html and "Dziura" not in html
    resp = await gw.client.get(page + "?code=AAAA-BBBB-CCCC-DDDD")
    assert resp.status == 404 and "nie pasuje" in await resp.text()
    resp = await gw.client.post(page + "/wiadomosc", data={"message": "x"}, allow_redirects=False)
    assert resp.status == 303  # no session: back to the code form
