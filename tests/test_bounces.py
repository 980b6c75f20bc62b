"""Issue #19: bounces of our own mail are read, and a failing address stops being used.

Every message leaves with its own bounce address (VERP, `bounce+<outbox id>-<mac>@…`);
SMTP `RCPT` takes only addresses we gave out. Reports are read with flufl.bounce, checked
here on its own sample bounces (tests/data/bounces/README). Over real SMTP, a hard bounce
of a real notice marks the parent's address failing, the notice goes on by Telegram, and
so does the next one; three soft bounces within a week do the same; a feedback-loop
complaint unsubscribes like the one-click link.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from gateway.jobs import run_job
from gateway.keys import SMTP_PORT
from mail.bounces import bounce_address, bounced_outbox, read_report
from store.models import Identity, Outbox, Person
from tests.conftest import Gateway
from tests.panel import LINK, csrf_of
from tests.test_mail_recipients import Sink
from tests.test_unsubscribe import gwr, mail_first_parent, remark  # noqa: F401

SAMPLES = Path(__file__).parent / "data" / "bounces"
DOMAIN = "milanowek.example"


@pytest.mark.parametrize(("sample", "kind", "address"), [
    ("dsn_01.txt", "hard", "userx@example.com"),
    ("dsn_07.txt", "soft", "userx@example.nz"),
    ("postfix_01.txt", "hard", "xxxxx@local.ie"),
    ("qmail_01.txt", "hard", "userx@example.de"),
    ("exim_01.txt", "hard", "userx@its.example.nl"),
    ("yahoo_01.txt", "hard", "userx@example.com"),
    ("aol_01.txt", "hard", "screenname@aol.com"),
    ("simple_03.txt", "soft", "userx@example.za"),
])
def test_flufl_bounce_samples_are_classified(sample: str, kind: str, address: str) -> None:
    report = read_report((SAMPLES / sample).read_bytes())
    assert (report.kind, report.addresses) == (kind, frozenset({address}))


def test_a_feedback_loop_report_is_a_complaint_and_a_plain_mail_is_no_report() -> None:
    report = read_report(arf("<1@milanowek.example>"))
    assert (report.kind, report.detail) == ("complaint", "complaint: abuse")
    plain = b"From: jan@example.pl\r\nSubject: Hej\r\n\r\nZwykly list.\r\n"
    assert read_report(plain).kind is None


def test_the_bounce_address_names_its_message_and_only_with_our_mac() -> None:
    address = bounce_address(42, b"key", DOMAIN)
    local = address.split("@")[0]
    assert re.fullmatch(r"bounce\+42-[0-9a-f]{16}", local)
    assert bounced_outbox(local, b"key") == 42
    assert bounced_outbox(local, b"other key") is None
    assert bounced_outbox(local.replace("+42-", "+43-"), b"key") is None
    assert bounced_outbox("bounce", b"key") is None


async def rcpt(gw: Gateway, address: str) -> tuple[int, str]:
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=gw.app[SMTP_PORT], timeout=10)
    await smtp.connect()
    try:
        await smtp.ehlo()
        await smtp.mail("")
        try:
            answer = await smtp.rcpt(address)
        except aiosmtplib.SMTPRecipientRefused as refused:
            return refused.code, refused.message
        return answer.code, answer.message
    finally:
        await smtp.quit()


async def test_a_forged_bounce_address_is_refused_at_rcpt(gw: Gateway) -> None:
    key = gw.services.signing_secret.encode()
    assert (await rcpt(gw, bounce_address(7, key, DOMAIN)))[0] == 250
    for forged in (bounce_address(7, b"guessed", DOMAIN), f"bounce+7-{'0' * 16}@{DOMAIN}",
                   f"bounce@{DOMAIN}", f"bounce+7@{DOMAIN}"):
        assert await rcpt(gw, forged) == (550, "5.1.1 Unknown mailbox"), forged


def dsn(original: bytes, recipient: str, *, action: str = "failed", status: str = "5.1.1"
        ) -> bytes:
    """A delivery status notification (RFC 3464) about `original`, as an MTA writes it."""
    head = original.split(b"\r\n\r\n", 1)[0].decode()
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.pl>\r\n"
        "To: bounce@milanowek.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-" + action + status + "@mx.example.pl>\r\n"
        "MIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.pl\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {status[0]}50 {status} mailbox problem\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + head + "\r\n--B--\r\n"
    ).encode()


def arf(message_id: str) -> bytes:
    """A feedback-loop report (RFC 5965) about one of our messages."""
    return (
        "From: feedback@fbl.example.com\r\nTo: bounce@milanowek.example\r\n"
        "Subject: FW: spam report\r\nMessage-ID: <arf-1@fbl.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\r\n"
        "--F\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: ogloszenia@milanowek.example\r\nMessage-ID: {message_id}\r\n\r\n--F--\r\n"
    ).encode()


async def report(gw: Gateway, bounce_to: str, raw: bytes) -> None:
    """Deliver a report to a bounce address over SMTP, null sender, and handle it."""
    code, message = await gw.smtp(raw, to=bounce_to.split("@")[0], sender="")
    assert code == 250, message
    await gw.drain()


def last_relayed(sink: Sink) -> tuple[str, EmailMessage, bytes]:
    sender, _, _, raw = sink.received[-1]
    return sender, email.message_from_bytes(raw, policy=policy.default), raw  # type: ignore[return-value]


async def test_a_hard_bounce_marks_the_address_failing_and_notices_go_by_telegram(
        gwr: Gateway, relay: tuple[Sink, int]) -> None:  # noqa: F811
    sink = relay[0]
    parent = await mail_first_parent(gwr, 5201)
    await remark(gwr, 11)
    sender, mail, raw = last_relayed(sink)
    row = await Outbox.get(channel="email", recipient="rodzic@example.pl")
    # the envelope sender is the message's own bounce address
    assert sender == bounce_address(row.id, gwr.services.signing_secret.encode(), DOMAIN)
    telegram_before = len(gwr.botapi.texts_to(5201))

    await report(gwr, sender, dsn(raw, "rodzic@example.pl"))
    found = await Identity.get(person_id=parent, channel="email")
    assert found.failing_since is not None and found.failing_reason
    assert (await Outbox.get(id=row.id)).status == "bounced"
    # the bounced remark went on by Telegram, through the row's own fallback
    assert "Pomoc koledze 11" in gwr.botapi.texts_to(5201)[-1]
    # and the next notice goes straight by Telegram; no more mail to the address
    mails = len(sink.received)
    await remark(gwr, 12)
    assert len(sink.received) == mails
    assert "Pomoc koledze 12" in gwr.botapi.texts_to(5201)[-1]
    assert len(gwr.botapi.texts_to(5201)) == telegram_before + 2

    # the console's person page says so
    await gwr.person("Administratorka", ["admin"], email="admin@milanowek.example", units=[])
    html = await (await gwr.client.get("/panel/wejscie")).text()
    await gwr.client.post("/panel/wejscie", data={"email": "admin@milanowek.example",
                                                  "csrf": csrf_of(html)})
    await gwr.drain()
    link = LINK.search(last_relayed(sink)[1].get_body(("plain",)).get_content())
    assert link
    html = await (await gwr.client.get(link.group(1))).text()
    await gwr.client.post(link.group(1), data={"csrf": csrf_of(html)})
    page = await (await gwr.client.get(f"/panel/ludzie/{parent}")).text()
    assert "rodzic@example.pl" in page and "nie działa od" in page

    # a bounced message is forgotten after the retention period like a sent one
    gwr.clock.advance(days=gwr.settings.retention_days + 1)
    await run_job(gwr.services, "retention")
    assert not await Outbox.filter(id=row.id).exists()


async def test_three_soft_bounces_in_a_week_count_as_hard(
        gwr: Gateway, relay: tuple[Sink, int]) -> None:  # noqa: F811
    sink = relay[0]
    parent = await mail_first_parent(gwr, 5202)
    for n in range(3):
        await remark(gwr, 20 + n)
        sender, _, raw = last_relayed(sink)
        await report(gwr, sender, dsn(raw, "rodzic@example.pl", action="delayed",
                                      status="4.2.2"))
        failing = (await Identity.get(person_id=parent, channel="email")).failing_since
        assert (failing is not None) == (n == 2), n
    mails = len(sink.received)
    await remark(gwr, 30)
    assert len(sink.received) == mails
    assert "Pomoc koledze 30" in gwr.botapi.texts_to(5202)[-1]


async def test_a_complaint_unsubscribes_that_notice_type(
        gwr: Gateway, relay: tuple[Sink, int]) -> None:  # noqa: F811
    sink = relay[0]
    parent = await mail_first_parent(gwr, 5203)
    await remark(gwr, 40)
    sender, mail, _ = last_relayed(sink)
    await report(gwr, sender, arf(mail["Message-ID"]))
    person = await Person.get(id=parent)
    assert person.notices["remarks@email"] == "off"
    assert (await Identity.get(person_id=parent, channel="email")).failing_since is None
    mails = len(sink.received)
    await remark(gwr, 41)
    assert len(sink.received) == mails
    assert "Pomoc koledze 41" in gwr.botapi.texts_to(5203)[-1]
