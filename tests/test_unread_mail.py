"""Issue #18, fault 1 (second half): no accepted message ever ends in silence.

Mail the gateway took with `250` but cannot turn into a case — the reader rejects it, or
its handling fails for good — is answered ("we have passed it to the office"), unless it
is automatic, and waits for a clerk in the console's queue "Poczta nieodczytana" with the
original to download; a counter and a gauge count it and `/healthz` names it. A store that
is away for a moment is not the message's fault: the mail stays pending and is retried.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from tortoise.exceptions import DBConnectionError

from gateway.config import Settings
from gateway.keys import INBOX
from handlers import router
from handlers.cases import contacts_of
from mail import inbound as mail_inbound
from store.models import AuditEntry, Case, CaseContact, RawInbound
from tests.conftest import Gateway, make_mail
from tests.panel import csrf_of, sign_in, staff_member

#: a plain mail as mutt writes it: `Content-Disposition: inline` on a single text part
MUTT = (b"From: Anna Nowak <anna@example.pl>\r\n"
        b"To: sprawy@milanowek.example\r\n"
        b"Subject: =?utf-8?Q?Wniosek_o_za=C5=9Bwiadczenie?=\r\n"
        b"Message-ID: <20261125090000.GA1234@example.pl>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Disposition: inline\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"User-Agent: NeoMutt/20231103\r\n"
        b"\r\n"
        b"Prosz\xc4\x99 o wydanie za\xc5\x9bwiadczenia o zameldowaniu.\r\n")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A low threshold, so that three unread mails are "piling up"."""
    return settings.model_copy(update={"unread_mail_alert": 3})


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mail reader fails on everything: the safety net must not depend on what the
    MIME parser can or cannot read this week."""
    def broken(row, ctx, bot=None):  # type: ignore[no-untyped-def]
        raise AttributeError("'str' object has no attribute 'content_disposition'")

    monkeypatch.setattr(mail_inbound, "read_stored", broken)  # what the email channel reads with


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def metric(gw: Gateway, name: str, **labels: str) -> float:
    """One sample of /metrics, as a monitoring system scrapes it."""
    text = await (await gw.client.get("/metrics")).text()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def healthz(gw: Gateway) -> tuple[int, dict]:
    resp = await gw.client.get("/healthz")
    return resp.status, await resp.json()


def is_our_acknowledgement(message: EmailMessage) -> bool:
    text = text_of(message)
    return "przekazaliśmy" in text and "passed it to" in text


async def test_a_mutt_mail_is_never_dropped_whatever_the_parser_does(gw: Gateway) -> None:
    """On today's parser this mail fails; with a fixed one it opens a case. Either way
    the sender hears from us and the mail is somewhere a clerk works."""
    sent = await gw.mail(MUTT, sender="anna@example.pl")
    assert [m["To"] for m in sent] == ["anna@example.pl"]
    opened = await CaseContact.filter(channel="email", address="anna@example.pl").count()
    queued = await RawInbound.filter(status="unread").count()
    assert opened + queued == 1
    if queued:
        assert is_our_acknowledgement(sent[0])


async def test_unreadable_mail_is_answered_queued_downloadable_counted_and_opened_as_a_case(
        gw: Gateway, unreadable: None, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw)  # a clerk of the cases unit
    sent = await gw.mail(MUTT, sender="anna@example.pl")
    # the sender is answered, in Polish first and in English, threaded to their mail
    [answer] = sent
    assert answer["To"] == "anna@example.pl"
    assert answer["From"] == "sprawy@milanowek.example"
    assert answer["In-Reply-To"] == "<20261125090000.GA1234@example.pl>"
    assert answer["Auto-Submitted"] == "auto-generated"
    text = text_of(answer)
    assert is_our_acknowledgement(answer)
    assert text.index("przekazaliśmy") < text.index("passed it to")
    assert "Wniosek o zaświadczenie" in text
    assert await Case.all().count() == 0
    row = await RawInbound.get()
    assert row.status == "unread" and row.handled_at is None
    # counted, and named by /healthz (one is not yet a pile)
    assert await metric(gw, "emil_unread_mail_total", reason="unreadable") == 1
    assert await metric(gw, "emil_unread_mail_unhandled") == 1
    status, body = await healthz(gw)
    assert (status, body["status"], body["unread_mail"]) == (200, "ok", 1)

    # a clerk sees it in the queue: sender, subject, size, why, and the original
    await sign_in(gw, "urzedniczka@milanowek.example")
    page = await (await gw.client.get("/panel/nieodczytane")).text()
    for shown in ("anna@example.pl", "Wniosek o zaświadczenie", f"/panel/nieodczytane/{row.id}"):
        assert shown in page, shown
    resp = await gw.client.get(f"/panel/nieodczytane/{row.id}/oryginal")
    assert resp.status == 200
    assert await resp.read() == MUTT
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert resp.headers["Cache-Control"] == "no-store"
    # the health page names them too (for an admin)
    await staff_member(gw, "admin@milanowek.example", ["admin"], [], name="Adam Admin")
    admin = await sign_in(gw, "admin@milanowek.example", await aiohttp_client(gw.client.server))
    health = await (await admin.get("/panel/zdrowie")).text()
    assert "Poczta nieodczytana" in health and "/panel/nieodczytane" in health

    # opening a case from it: the clerk types what the mail says; the sender is its requester
    detail = await (await gw.client.get(f"/panel/nieodczytane/{row.id}")).text()
    resp = await gw.client.post(f"/panel/nieodczytane/{row.id}/sprawa", allow_redirects=False,
                                data={"csrf": csrf_of(detail), "temat": "Zaświadczenie",
                                      "tresc": "Prośba o zaświadczenie o zameldowaniu."})
    assert resp.status == 303
    case = await Case.get()
    assert resp.headers["Location"] == f"/panel/sprawy/{case.number}"
    assert (await contacts_of(case), case.subject, case.origin_channel) == (
        {("email", "anna@example.pl")}, "Zaświadczenie", "email")
    await gw.drain()
    [confirmation] = [m for m in gw.sent_mail() if case.number in str(m["Subject"])]
    assert confirmation["To"] == "anna@example.pl"
    row = await RawInbound.get()
    assert row.status == "handled" and row.handled_at is not None and row.handled_by_id
    assert row.case_number == case.number
    assert await AuditEntry.filter(action="unread.open_case", object=f"inbound:{row.id}",
                                   source="console").count() == 1
    page = await (await gw.client.get("/panel/nieodczytane")).text()
    assert f"/panel/nieodczytane/{row.id}/oryginal" not in page
    assert await metric(gw, "emil_unread_mail_unhandled") == 0
    # a second click (another tab, another clerk) opens no second case
    resp = await gw.client.post(f"/panel/nieodczytane/{row.id}/sprawa", allow_redirects=False,
                                data={"csrf": csrf_of(detail), "temat": "x", "tresc": "y"})
    assert resp.status == 409 and await Case.all().count() == 1


async def test_they_pile_up_healthz_warns_and_mark_handled_clears_them(
        gw: Gateway, unreadable: None) -> None:
    await staff_member(gw)
    for n in range(3):
        await gw.mail(make_mail(f"Pismo {n}", "treść"))
    status, body = await healthz(gw)
    # a load balancer must keep sending traffic (the process is well); people must look
    assert status == 200 and body["status"] == "warn" and body["unread_mail"] == 3
    assert body["warnings"] == ["unread_mail"]
    await sign_in(gw, "urzedniczka@milanowek.example")
    for row in await RawInbound.all():
        page = await (await gw.client.get(f"/panel/nieodczytane/{row.id}")).text()
        resp = await gw.client.post(f"/panel/nieodczytane/{row.id}/zalatwione",
                                    data={"csrf": csrf_of(page)}, allow_redirects=False)
        assert resp.status == 303
    assert await AuditEntry.filter(action="unread.handled").count() == 3
    status, body = await healthz(gw)
    assert (status, body["status"], body["unread_mail"]) == (200, "ok", 0)
    assert "warnings" not in body


async def test_mail_whose_handling_fails_for_good_ends_the_same_way(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    async def crashes(ctx, msg, person):  # type: ignore[no-untyped-def]
        raise ValueError("a bug in the handler")

    monkeypatch.setitem(router.MAILBOXES, "sprawy", crashes)
    [answer] = await gw.mail(make_mail("Zażalenie", "Treść zażalenia.",
                                       sender="Ewa <ewa@example.pl>"))
    assert answer["To"] == "ewa@example.pl" and is_our_acknowledgement(answer)
    row = await RawInbound.get()
    assert row.status == "unread" and row.note.startswith("ref ")
    assert row.note[4:] in text_of(answer)  # the log's reference, for the office
    assert await metric(gw, "emil_unread_mail_total", reason="failed") == 1
    assert (await healthz(gw))[1]["unread_mail"] == 1
    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    page = await (await gw.client.get("/panel/nieodczytane")).text()
    assert "Zażalenie" in page and "ewa@example.pl" in page


async def test_a_store_away_for_a_moment_leaves_the_mail_pending(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    async def store_away(ctx, msg, person):  # type: ignore[no-untyped-def]
        raise DBConnectionError("connection refused")

    real = router.MAILBOXES["sprawy"]
    monkeypatch.setitem(router.MAILBOXES, "sprawy", store_away)
    code, _ = await gw.smtp(make_mail("Wniosek", "treść"))
    assert code == 250
    with pytest.raises(DBConnectionError):
        await gw.app[INBOX].drain()
    assert await RawInbound.filter(status="pending").count() == 1
    assert await metric(gw, "emil_unread_mail_total", reason="failed") == 0
    assert (await healthz(gw))[1]["unread_mail"] == 0
    monkeypatch.setitem(router.MAILBOXES, "sprawy", real)
    await gw.drain()
    assert await Case.filter(subject="Wniosek").count() == 1
    assert [m["To"] for m in gw.sent_mail()] == ["jan@example.pl"]


@pytest.mark.parametrize("headers,envelope", [
    ({"Auto_Submitted": "auto-replied"}, "jan@example.pl"),
    ({"Precedence": "list"}, "jan@example.pl"),
    ({}, ""),  # a bounce: the null return path
    ({}, "mailer-daemon@example.pl"),
], ids=["auto-submitted", "precedence-list", "bounce", "mailer-daemon"])
async def test_automatic_unreadable_mail_gets_no_answer_but_is_queued(
        gw: Gateway, unreadable: None, headers: dict[str, str], envelope: str) -> None:
    code, _ = await gw.smtp(make_mail("Automatyczna odpowiedź", "x", **headers), sender=envelope)
    assert code == 250
    await gw.drain()
    assert gw.sent_mail() == []
    assert await RawInbound.filter(status="unread").count() == 1
    assert await metric(gw, "emil_unread_mail_total", reason="unreadable") == 1


async def test_our_own_address_is_never_answered(gw: Gateway, unreadable: None) -> None:
    assert await gw.mail(make_mail("Echo", "x", sender="sprawy@milanowek.example"),
                         sender="jan@example.pl") == []
    assert await RawInbound.filter(status="unread").count() == 1


async def test_headers_that_cannot_be_read_fall_back_to_the_envelope(
        gw: Gateway, unreadable: None) -> None:
    raw = (b"From: =?x-unknown?Q?=ZZ?= <<<not an address\r\n"
           b"Subject: =?utf-8?B?!!!not-base64?=\r\n"
           b"Content-Type: multipart/mixed\r\n"
           b"\r\n\xff\xfe\x00 broken body")
    [answer] = await gw.mail(raw, sender="piotr@example.pl")
    assert answer["To"] == "piotr@example.pl" and is_our_acknowledgement(answer)


# --- who may see and do what, by table ------------------------------------------------------

WHO = {"clerk": (["staff"], ["urzad"]), "admin": (["admin"], []),
       "other_staff": (["staff"], ["szkola-2"]), "librarian": (["librarian"], [])}
ALLOWED = {"clerk", "admin"}
PAGES = ("/panel/nieodczytane", "/panel/nieodczytane/{id}", "/panel/nieodczytane/{id}/oryginal")
FORMS = ("/panel/nieodczytane/{id}/sprawa", "/panel/nieodczytane/{id}/zalatwione")


@pytest.mark.parametrize("who", sorted(WHO))
async def test_the_queue_and_the_original_by_role_and_csrf(
        gw: Gateway, unreadable: None, aiohttp_client, who: str) -> None:  # type: ignore[no-untyped-def]
    await gw.mail(MUTT, sender="anna@example.pl")
    row = await RawInbound.get()
    roles, units = WHO[who]
    email = f"{who}@milanowek.example"
    await staff_member(gw, email, roles, units, name=who)
    client = await sign_in(gw, email, await aiohttp_client(gw.client.server))
    for path in PAGES:
        resp = await client.get(path.format(id=row.id), allow_redirects=False)
        assert resp.status == (200 if who in ALLOWED else 403), (who, path)
        if who not in ALLOWED:
            assert MUTT not in await resp.read()
    home = await (await client.get("/panel/", allow_redirects=True)).text()
    assert ("/panel/nieodczytane" in home) == (who in ALLOWED)
    data = {"temat": "Zaświadczenie", "tresc": "Treść"}
    for path in FORMS:
        resp = await client.post(path.format(id=row.id), data=data, allow_redirects=False)
        assert resp.status == 403, (who, path, "without a token")
        resp = await client.post(path.format(id=row.id), data={**data, "csrf": "0" * 43},
                                 allow_redirects=False)
        assert resp.status == 403, (who, path, "with a wrong token")
    resp = await client.post(f"/panel/nieodczytane/{row.id}/zalatwione",
                             data={"csrf": csrf_of(home)}, allow_redirects=False)
    assert resp.status == (303 if who in ALLOWED else 403)
    assert ((await RawInbound.get()).handled_at is not None) == (who in ALLOWED)
    anonymous = await aiohttp_client(gw.client.server)
    for path in PAGES:
        resp = await anonymous.get(path.format(id=row.id), allow_redirects=False)
        assert resp.status == 303
    for path in FORMS:
        resp = await anonymous.post(path.format(id=row.id), data=data, allow_redirects=False)
        assert resp.status == 401
    assert await Case.all().count() == 0


@pytest.mark.usefixtures("unreadable")
async def test_a_case_opened_from_unread_mail_keeps_an_original_of_any_size(gw: Gateway) -> None:
    """SMTP takes up to 25 MiB, a resident's file is kept up to 10: the original a clerk
    turns into a case is kept whatever its size (it was dropped without a word)."""
    from dataclasses import replace

    from handlers import audit, unread
    from store.models import Attachment, Person

    await gw.mail(MUTT)
    row = await RawInbound.get()
    clerk = await Person.get(id=await staff_member(gw))
    small = replace(gw.services, attachment_max_size=len(MUTT) // 2)
    case = await unread.open_case(small, row.id, subject="Zaświadczenie", text="Prośba.",
                                  clerk=clerk, actor=audit.Actor.of(clerk, "console"))
    assert case is not None
    [original] = await Attachment.filter(case_id=case.number)
    assert (original.filename, bytes(original.data)) == ("oryginal.eml", MUTT)
