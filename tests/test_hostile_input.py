"""Issue #18, faults 8, 9, 11 and 13: input that used to break the gateway. Form parts
aiohttp cannot read and Unicode digits in queries (500s); NUL and bidi controls in mail,
JSON and forms (a mail that failed for good on PostgreSQL, raw U+202E in the console);
an announcement's content type with CR/LF in it and a preview escaped twice; request
bodies that trickle in; attachment downloads a browser or a proxy could keep."""

from __future__ import annotations

import asyncio
import base64
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.jobs import run_job
from gateway.keys import SMTP_PORT
from handlers.text import clean, json_needs_cleaning, whole_number
from store.models import Announcement, Attachment, Case, Outbox
from tests.conftest import Gateway, make_mail
from tests.panel import csrf_of, sign_in, staff_member

# --- fault 8: a form part aiohttp cannot read, Unicode digits ---------------------------------

#: part headers aiohttp refuses while reading the form (each was a 500 on both forms)
BAD_PARTS = {
    "a NUL in a header name": b'Content-Disposition: form-data; name="email"\r\nX-A\x00b: v\r\n',
    "a header without a colon": b'Content-Disposition: form-data; name="email"\r\nno colon\r\n',
    "x-uuencode": b'Content-Disposition: form-data; name="email"\r\n'
                  b'Content-Transfer-Encoding: x-uuencode\r\n',
    "an unknown charset": b'Content-Disposition: form-data; name="email"\r\n'
                          b'Content-Type: text/plain; charset=no-such-charset\r\n',
    "a broken base64": b'Content-Disposition: form-data; name="email"\r\n'
                       b'Content-Transfer-Encoding: base64\r\n',
    "a bad disposition parameter": b"Content-Disposition: form-data; name*=x''%ff\r\n",
}


async def a_case(gw: Gateway) -> str:
    await gw.mail(make_mail("Dziura w drodze", "Przy ulicy Kościuszki 12."))
    return (await Case.all().order_by("-number").first()).number


async def test_a_form_part_that_cannot_be_read_is_a_400_page(gw: Gateway) -> None:
    number = await a_case(gw)
    failures = []
    for what, part in BAD_PARTS.items():
        body = b"--B\r\n" + part + b"\r\nabcde\r\n--B--\r\n"
        for path in ("/panel/wejscie", "/panel/wejscie/abc", f"/sprawy/{number}/kod"):
            resp = await gw.client.post(path, data=body, headers={
                "Content-Type": "multipart/form-data; boundary=B"})
            if resp.status != 400 or resp.content_type != "text/html":
                failures.append((what, path, resp.status))
    assert not failures, failures


async def test_unicode_digits_in_queries_and_commands_are_not_numbers(gw: Gateway) -> None:
    await staff_member(gw)
    client = await sign_in(gw, "urzedniczka@milanowek.example")
    for query in ({"wiek": "²"}, {"strona": "²"}, {"strona": "٣"}, {"wiek": "9" * 40},
                  {"strona": "-1"}):
        resp = await client.get("/panel/sprawy", params=query)
        assert resp.status == 200, query
    await gw.linked(7001, "Rodzic", ["parent"])
    [reply] = await gw.tg(7001, "/ustawienia godzina ²")
    assert "Nie rozumiem ustawienia" in reply


# --- fault 9: control characters and bidi overrides --------------------------------------------

#: NUL and RIGHT-TO-LEFT OVERRIDE in the sender's name, the subject, the body and the
#: attachment's name (U+202E makes "fdp.exe" read "exe.pdf")
HOSTILE_MAIL = b"\r\n".join([
    b"From: =?utf-8?q?Jan=00_Kowalski=E2=80=AE?= <jan@example.pl>",
    b"To: sprawy@milanowek.example",
    b"Subject: =?utf-8?q?Dziura=00_w_drodze_=E2=80=AEgnp.exe?=",
    b"Message-ID: <nul-1@example.pl>",
    b"MIME-Version: 1.0",
    b'Content-Type: multipart/mixed; boundary="XX"',
    b"",
    b"--XX",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Transfer-Encoding: quoted-printable",
    b"",
    b"Przy ulicy=00 Ko=C5=9Bciuszki =E2=80=AEjest dziura.=0D=0A=1B[2J",
    b"--XX",
    b"Content-Type: application/pdf",
    b"Content-Disposition: attachment; filename*=utf-8''zdj%00ecie%E2%80%AEfdp.exe",
    b"Content-Transfer-Encoding: base64",
    b"",
    b"JVBERi0xLjQK",
    b"--XX--",
    b""])

CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


async def test_nul_and_bidi_in_a_mail_still_open_a_clean_case(gw: Gateway) -> None:
    [confirmation] = await gw.mail(HOSTILE_MAIL)
    assert re.search(r"UM-\d{4}-\d{6}", str(confirmation["Subject"]))
    case = await Case.get()
    assert case.subject == "Dziura w drodze gnp.exe"
    assert case.body.startswith("Przy ulicy Kościuszki jest dziura.")
    assert not CONTROLS.search(case.body)
    [stored] = await Attachment.all()
    assert stored.filename == "zdjeciefdp.exe" and stored.content_type == "application/pdf"
    # the console shows it with no control character, and names isolated
    await staff_member(gw)
    client = await sign_in(gw, "urzedniczka@milanowek.example")
    for path in ("/panel/sprawy", f"/panel/sprawy/{case.number}"):
        html = await (await client.get(path)).text()
        assert not CONTROLS.search(html), path
        assert "<bdi>Dziura w drodze gnp.exe</bdi>" in html, path
    html = await (await client.get(f"/panel/sprawy/{case.number}")).text()
    assert "<bdi>zdjeciefdp.exe</bdi>" in html


#: text weighted towards what clean() changes: controls, bidi controls, surrogates, CR
_TRICKY = st.text(st.one_of(st.characters(codec=None), st.sampled_from(
    "\x00\x1b\r\n\t\x7f\x85\x9f\u202a\u202e\u2066\u2069\ud800\udfff\u2026ó„")))


@settings(max_examples=500, database=None, derandomize=True)
@given(_TRICKY)
def test_the_json_scan_misses_nothing_clean_would_change(text: str) -> None:
    """A JSON body is walked only when a scan of its bytes finds something: the scan
    must find every string that clean() would change, however the JSON is written."""
    if clean(text) == text:
        return
    assert json_needs_cleaning(json.dumps(text).encode())
    if not any("\ud800" <= c <= "\udfff" for c in text):  # not UTF-8 at all otherwise
        assert json_needs_cleaning(json.dumps(text, ensure_ascii=False).encode())


def test_whole_numbers_are_ascii_digits_in_range() -> None:
    assert [whole_number(t) for t in ("12", "²", "٣", "-1", "", None, "9" * 13, " 1")] == [
        12, None, None, None, None, None, None, None]
    assert whole_number("24", high=23) is None and whole_number("0", low=1) is None


async def test_a_nul_in_the_envelope_sender_is_stored(gw: Gateway) -> None:
    """aiosmtpd takes `MAIL FROM:<a NUL b>`; the envelope is stored as JSON, which
    PostgreSQL refused: 451 to every retry of the sender's server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.app[SMTP_PORT])
    answers = [await reader.readline()]
    for line in (b"HELO mail.example.pl", b"MAIL FROM:<jan\x00@example.pl>",
                 b"RCPT TO:<sprawy@milanowek.example>", b"DATA"):
        writer.write(line + b"\r\n")
        answers.append(await reader.readline())
    raw = make_mail("Ławka", "Zepsuta.").as_bytes().replace(b"\n", b"\r\n")
    writer.write(raw + b"\r\n.\r\nQUIT\r\n")
    answers.append(await reader.readline())
    writer.close()
    assert answers[-1].startswith(b"250 "), answers
    await gw.drain()
    assert (await Case.get()).subject == "Ławka"


async def test_controls_in_json_and_forms_are_removed(gw: Gateway) -> None:
    # the JSON escapes: NUL, ESC, RLO, a lone surrogate (which UTF-8 cannot hold)
    resp = await gw.client.post("/api/v1/cases", data=(
        b'{"subject": "Lampa\\u0000 \\u202eprzy szkole",'
        b' "body": "Nie \\u001b[2Jdziala\\ud800."}'), headers={"Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    case = await Case.get(number=created["number"])
    assert (case.subject, case.body) == ("Lampa przy szkole", "Nie [2Jdziala\ufffd.")
    # the residents' page: a message and a file name with controls
    page = await gw.client.get(f"/sprawy/{case.number}", params={"code": created["access_code"]})
    html = await page.text()
    resp = await gw.client.post(f"/sprawy/{case.number}/wiadomosc", data={
        "csrf": csrf_of(html), "message": "Dzi\x00ękuję\u202e!"}, allow_redirects=False)
    assert resp.status == 303
    html = await (await gw.client.get(f"/sprawy/{case.number}")).text()
    assert "Dziękuję!" in html and not CONTROLS.search(html)


# --- fault 11: announcements ---------------------------------------------------------------


async def test_an_announcement_attachment_needs_a_real_content_type(gw: Gateway) -> None:
    base = {"title": "Plan", "body": "W załączniku.", "audience": {"units": ["urzad"]}}
    data = base64.b64encode(b"%PDF-1.4").decode()
    for bad in ("application/pdf\r\nBcc: all@example.org", "pdf", "text/", "a b/c",
                "text/plain; charset=utf-8\n"):
        resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
            **base, "attachment": {"filename": "plan.pdf", "content_type": bad, "data": data}})
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["field"] == "attachment.content_type"
    await gw.person("Urzędniczka", ["staff"], units=["urzad"], email="u@example.org")
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        **base, "attachment": {"filename": "plan.pdf", "content_type": "Application/PDF",
                               "data": data}})
    assert resp.status == 202
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    [copy] = [m for m in gw.sent_mail() if m["To"] == "u@example.org"]
    [file] = list(copy.iter_attachments())
    assert file.get_content_type() == "application/pdf"
    assert await Outbox.filter(status="failed").count() == 0
    assert (await Announcement.get()).attachment["content_type"] == "application/pdf"


async def test_the_telegram_preview_escapes_once(gw: Gateway) -> None:
    await staff_member(gw, "sekretariat@milanowek.example", ["staff"], ["szkola-2"])
    client = await sign_in(gw, "sekretariat@milanowek.example")
    page = await (await client.get("/panel/ogloszenia")).text()
    preview = await (await client.post("/panel/ogloszenia/podglad", data={
        "csrf": csrf_of(page), "tytul": "Rada & zebranie <b>", "tresc": "A <i>x</i> & **B**",
        "unit:szkola-2": "szkola-2"})).text()
    telegram = re.search(r'class="bubble"[^>]*>(.*?)</div>', preview, re.S)
    assert telegram, preview[:3000]
    shown = telegram.group(1)
    assert "Rada &amp; zebranie &lt;b&gt;" in shown and "&amp;amp;" not in shown
    assert "<b>Rada" in shown and "&lt;i&gt;x&lt;/i&gt; &amp; <b>B</b>" in shown


# --- fault 13: slow bodies, attachment downloads -----------------------------------------------


async def test_a_body_that_trickles_in_is_cut_off(gw: Gateway) -> None:
    gw.settings.http_body_seconds = 0.2  # read per request: a small deadline for the test
    server = gw.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 60)  # until the server closes it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert await Case.all().count() == 0
    # a body that arrives in time is not affected
    resp = await gw.client.post("/api/v1/cases", json={"subject": "s", "body": "b"})
    assert resp.status == 201


async def test_attachment_downloads_are_not_kept_or_sniffed(gw: Gateway) -> None:
    msg = make_mail("Szkoda", "Zdjęcie w załączniku.")
    msg.add_attachment(b"<svg><script>alert(1)</script></svg>", maintype="image",
                       subtype="svg+xml", filename='zdjęcie "1".svg')
    await gw.mail(msg)
    [stored] = await Attachment.all()
    await staff_member(gw)
    client = await sign_in(gw, "urzedniczka@milanowek.example")
    resp = await client.get(f"/panel/sprawy/{stored.case_id}/zalaczniki/{stored.id}")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Type"] == "application/octet-stream"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    assert "filename*=UTF-8''zdj%C4%99cie%20%221%22.svg" in disposition
    assert await resp.read() == b"<svg><script>alert(1)</script></svg>"
