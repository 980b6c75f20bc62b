"""Issue #18, fault 3: one visitor could fill the disk. An anonymous case (its code in the
API's answer) and fifteen 10 MiB posts through the residents' page took 148 MiB. Now a
case takes so many files and bytes, a client so many page posts an hour, and the whole
store so many bytes; what is refused is named to the sender, the text always kept."""

from __future__ import annotations

import re
from email.message import EmailMessage

from aiohttp import FormData
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.config import Settings
from store.models import Attachment, CaseEvent, Outbox
from tests.conftest import Gateway, make_mail
from tests.doubles.botapi import message_update
from tests.panel import sign_in

MIB = 1024 * 1024


async def gateway_with(aiohttp_client, settings: Settings, botapi, clock,  # type: ignore[no-untyped-def]
                       **changes: object) -> Gateway:
    changed = Settings(**{**settings.model_dump(), **changes, "_env_file": None})
    client: TestClient = await aiohttp_client(create_app(changed, clock=clock,
                                                         run_workers=False))
    return Gateway(client, changed, botapi, clock)


async def anonymous_case(gw: Gateway) -> tuple[str, str]:
    """What the attacker did: a case without an email (the answer carries its code), then
    the page opened with that code. Returns (page address, CSRF token)."""
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Dziura", "body": "Tu."})
    created = await resp.json()
    page = f"/sprawy/{created['number']}"
    await gw.client.get(f"{page}?code={created['access_code']}")
    html = await (await gw.client.get(page)).text()
    return page, re.search(r'name="csrf" value="(\w+)"', html).group(1)


async def post(gw: Gateway, page: str, csrf: str, text: str, data: bytes | None = None,
               name: str = "plik.bin", lang: str = "pl"):  # type: ignore[no-untyped-def]
    form = FormData()
    form.add_field("csrf", csrf)
    form.add_field("message", text)
    if data is not None:
        form.add_field("attachment", data, filename=name, content_type="application/pdf")
    suffix = "?lang=en" if lang == "en" else ""
    return await gw.client.post(f"{page}/wiadomosc{suffix}", data=form, allow_redirects=False)


async def test_fifteen_large_posts_stop_at_the_cases_limit(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    # the attack at a tenth of its size: 1 MiB files, 5 MiB a case (10 MiB and 50 MiB)
    gw = await gateway_with(aiohttp_client, settings, botapi, clock,
                            attachment_max_size=MIB, case_attachments_max_bytes=5 * MIB)
    page, csrf = await anonymous_case(gw)
    number = page.rsplit("/", 1)[1]
    answers = [await post(gw, page, csrf, f"Plik {n}", b"x" * MIB, f"skan-{n}.pdf")
               for n in range(1, 16)]
    assert [r.status for r in answers] == [303] * 5 + [413] * 10
    refusal = await answers[5].text()
    assert "skan-6.pdf" in refusal and "nie został zapisany" in refusal
    assert "5 MB" in refusal and "5242880" not in refusal  # people read megabytes
    assert "Dołączyliśmy Twoją wiadomość" in refusal  # the text is in the case
    assert '<html lang="pl">' in refusal
    # nothing beyond the limit is stored; every message's text is
    assert await Attachment.filter(case_id=number).count() == 5
    assert sum(await Attachment.filter(case_id=number).values_list("size", flat=True)) == 5 * MIB
    texts = await CaseEvent.filter(case_id=number, kind="message").values_list("text", flat=True)
    assert len(texts) == 15 and all(f"Plik {n}" in " ".join(texts) for n in range(1, 16))
    assert "skan-15.pdf" in texts[-1]  # the clerk sees what was not stored
    english = await (await post(gw, page, csrf, "More", b"x" * 10, "a.pdf", lang="en")).text()
    assert '<html lang="en">' in english and "was not stored" in english and "5 MB" in english


async def test_a_case_takes_so_many_files(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    gw = await gateway_with(aiohttp_client, settings, botapi, clock, case_attachments_max_files=3)
    page, csrf = await anonymous_case(gw)
    for n in range(1, 4):
        assert (await post(gw, page, csrf, "", b"%d" % n, f"f{n}.pdf")).status == 303
    resp = await post(gw, page, csrf, "Jeszcze jeden", b"4", "f4.pdf")
    html = await resp.text()
    assert resp.status == 413 and "sprawa ma już 3 załączniki" in html and "f4.pdf" in html
    assert await Attachment.filter(case_id=page.rsplit("/", 1)[1]).count() == 3


async def test_page_posts_are_limited_per_client(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    gw = await gateway_with(aiohttp_client, settings, botapi, clock,
                            rate_page_posts_per_client=3)
    page, csrf = await anonymous_case(gw)
    statuses = [(await post(gw, page, csrf, f"Wiadomość {n}")).status for n in range(3)]
    assert statuses == [303, 303, 303]
    resp = await post(gw, page, csrf, "Czwarta")
    html = await resp.text()
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "Za dużo wiadomości" in html and "minut" in html
    english = await post(gw, page, csrf, "Fifth", lang="en")
    assert english.status == 429 and "Too many messages" in await english.text()
    # refused before it was read: told to come back, nothing half-stored
    assert await CaseEvent.filter(kind="message").count() == 3


def with_files(subject: str, body: str, files: list[tuple[str, bytes]], **kw: str
               ) -> EmailMessage:
    msg = make_mail(subject, body, **kw)
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return msg


async def test_a_mail_with_too_many_attachments_is_answered_with_the_refused_names(
        gw: Gateway) -> None:
    files = [(f"strona-{n:02d}.pdf", f"PDF strona {n}".encode()) for n in range(1, 23)]
    [reply] = await gw.mail(with_files("Wniosek z załącznikami", "W załączeniu skany.", files))
    text = reply.get_body(("plain",)).get_content()
    number = re.search(r"UM-\d{4}-\d{6}", str(reply["Subject"])).group(0)
    assert await Attachment.filter(case_id=number).count() == 20
    assert "strona-21.pdf" in text and "strona-22.pdf" in text and "strona-20.pdf" not in text
    assert "20 załączników" in text
    # a follow-up to the same case: every file refused, each named, the text kept
    follow = with_files(f"Re: [{number}] uzupełnienie", "Jeszcze jeden skan.",
                        [("aneks.pdf", b"%PDF- aneks")], In_Reply_To=reply["Message-ID"])
    [answer] = await gw.mail(follow)
    assert "aneks.pdf" in answer.get_body(("plain",)).get_content()
    event = await CaseEvent.filter(case_id=number, kind="message").first()
    assert event is not None and "Jeszcze jeden skan." in event.text and "aneks.pdf" in event.text


async def test_a_full_store_refuses_files_keeps_the_text_and_alerts_admins_once(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    gw = await gateway_with(aiohttp_client, settings, botapi, clock,
                            attachments_max_total=3000)
    admin = "admin@milanowek.example"
    await gw.person("Ada Admin", ["admin"], email=admin)
    page, csrf = await anonymous_case(gw)
    number = page.rsplit("/", 1)[1]
    assert (await post(gw, page, csrf, "Pierwszy", b"a" * 2000, "jeden.pdf")).status == 303
    resp = await post(gw, page, csrf, "Drugi, z planem", b"b" * 2000, "plan.pdf")
    html = await resp.text()
    assert resp.status == 413 and "plan.pdf" in html and "miejsce" in html
    event = await CaseEvent.filter(case_id=number, kind="message").order_by("-id").first()
    assert event is not None and event.text.startswith("Drugi, z planem")
    # mail too: the case is opened, the file named in the answer as not stored
    answers = await gw.mail(with_files("Wniosek", "Treść wniosku.", [("mapa.pdf", b"m" * 2000)]))
    [reply] = [m for m in answers if m["To"] == "jan@example.pl"]
    assert "mapa.pdf" in reply.get_body(("plain",)).get_content()
    await post(gw, page, csrf, "Trzeci", b"c" * 2000, "trzy.pdf")
    await gw.drain()
    assert await Attachment.all().count() == 1
    alerts = [m for m in gw.sent_mail() if m["To"] == admin]
    assert len(alerts) == 1 and "załącznik" in str(alerts[0]["Subject"]).lower()
    assert await Outbox.filter(recipient=admin).count() == 1
    # and the console's health page says so
    client = await sign_in(gw, admin)
    health = await (await client.get("/panel/zdrowie")).text()
    assert "Miejsce na załączniki" in health and "pełne" in health


async def test_the_bot_names_the_files_a_full_case_did_not_take(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    gw = await gateway_with(aiohttp_client, settings, botapi, clock, case_attachments_max_files=1)
    await gw.linked(3401, "Ola")
    await gw.tg(3401, "/sprawa")
    await gw.tg(3401, "Hałas nocą")
    created = (await gw.tg(3401, "Sąsiedzi co noc."))[-1]
    number = re.search(r"UM-\d{4}-\d{6}", created).group(0)
    for n in (1, 2):
        botapi.files[f"DOC-{n}"] = b"nagranie %d" % n
        data = message_update(3401, f"Nagranie {n}")
        data["message"]["caption"] = data["message"].pop("text")
        data["message"]["document"] = {"file_id": f"DOC-{n}", "file_unique_id": f"d{n}",
                                       "file_name": f"nagranie-{n}.wav",
                                       "mime_type": "audio/wav", "file_size": 10}
        data["message"]["reply_to_message"] = {"message_id": 1, "date": 1,
                                               "chat": data["message"]["chat"],
                                               "text": f"Sprawa {number}"}
        await gw.update(data)
    reply = botapi.texts_to(3401)[-1]
    assert "Niezapisane: nagranie-2.wav" in reply and "sprawa ma już 1 załącznik " in reply
    assert await Attachment.filter(case_id=number).values_list("filename", flat=True) == [
        "nagranie-1.wav"]


async def test_the_alert_comes_again_only_after_room_was_made(
        aiohttp_client, settings: Settings, botapi, clock) -> None:  # type: ignore[no-untyped-def]
    gw = await gateway_with(aiohttp_client, settings, botapi, clock, attachments_max_total=3000)
    admin = "admin@milanowek.example"
    await gw.person("Ada Admin", ["admin"], email=admin)
    page, csrf = await anonymous_case(gw)
    await post(gw, page, csrf, "", b"a" * 2000, "jeden.pdf")
    await post(gw, page, csrf, "", b"b" * 2000, "dwa.pdf")  # full: alert
    await Attachment.all().delete()  # the retention job, say, made room by the next day
    clock.advance(days=1)
    await post(gw, page, csrf, "", b"c" * 100, "maly.pdf")  # below 90 %: re-armed
    await post(gw, page, csrf, "", b"d" * 2000, "trzy.pdf")  # over 90 %, still room
    await post(gw, page, csrf, "", b"e" * 2000, "cztery.pdf")  # full again: a new alert
    await post(gw, page, csrf, "", b"f" * 2000, "piec.pdf")  # still full: no alert
    assert await Outbox.filter(recipient=admin).count() == 2
