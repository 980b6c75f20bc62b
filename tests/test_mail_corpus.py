"""Awkward real-world mail, and the SMTP dialogue's exact answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest

from gateway.keys import SMTP_PORT
from store.models import Attachment, Case
from tests.conftest import Gateway

DATA = Path(__file__).parent / "data" / "mail"


@pytest.mark.parametrize(
    ("name", "subject", "body_part"),
    [
        ("qp_encoded_subject.eml", "Zgłoszenie: zajeść na ul. Łąkową", "zmianę oznakowania zjazdu przy ul. Łąkowej"),
        ("base64_body.eml", "Ławka w parku", "Gęś, żółw, źdźbło"),
        ("html_only.eml", "HTML", "Wniosek o dowód osobisty & paszport."),
        ("missing_charset.eml", "Stary program pocztowy", "wywóz śmieci z ulicy Żółkiewskiego"),
        ("bogus_charset.eml", "Bogus", "Zażółć gęślą jaźń"),
        ("multipart_attachment.eml", "Wniosek z załącznikiem", "W załączniku wniosek."),
    ],
)
async def test_corpus_opens_cases(gw: Gateway, name: str, subject: str, body_part: str) -> None:
    raw = (DATA / name).read_bytes()
    replies = await gw.mail(raw)
    case = await Case.get()
    assert case.subject == subject
    assert body_part in case.body
    assert "<" not in case.body and "color:red" not in case.body
    assert len(replies) == 1 and case.number in replies[0]["Subject"]


async def test_attachment_with_encoded_filename(gw: Gateway) -> None:
    await gw.mail((DATA / "multipart_attachment.eml").read_bytes())
    stored = await Attachment.get()
    assert stored.filename == "wniośek.pdf"
    assert stored.content_type == "application/pdf"
    assert bytes(stored.data).startswith(b"%PDF-1.4")


async def smtp_dialogue(port: int, lines: list[bytes]) -> list[bytes]:
    """Speak SMTP line by line; collect every reply line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = [await reader.readline()]
    for line in lines:
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
        while answer[3:4] == b"-":  # multi-line reply
            answer = await reader.readline()
        answers.append(answer)
    writer.close()
    await writer.wait_closed()
    return answers


async def test_smtp_dialogue_exact_codes(gw: Gateway) -> None:
    port = gw.app[SMTP_PORT]
    answers = await smtp_dialogue(port, [
        b"HELO relay.example.pl\r\n",
        b"MAIL FROM:<jan@example.pl>\r\n",
        b"RCPT TO:<nikt@milanowek.example>\r\n",
        b"RCPT TO:<sprawy@innadomena.pl>\r\n",
        b"RCPT TO:<sprawy@milanowek.example>\r\n",
        b"DATA\r\n",
        b"Subject: test\r\nMessage-ID: <d-1@example.pl>\r\n\r\nTresc\r\n.\r\n",
        b"QUIT\r\n",
    ])
    codes = [a[:3] for a in answers]
    assert codes == [b"220", b"250", b"250", b"550", b"550", b"250", b"354", b"250", b"221"]
    assert answers[3].startswith(b"550 5.1.1")
    assert answers[4].startswith(b"550 5.7.1")


async def test_oversize_mail_gets_552(gw: Gateway) -> None:
    port = gw.app[SMTP_PORT]
    size = gw.settings.smtp_max_size + 1
    answers = await smtp_dialogue(port, [
        b"EHLO relay.example.pl\r\n",
        f"MAIL FROM:<jan@example.pl> SIZE={size}\r\n".encode(),
    ])
    assert answers[2].startswith(b"552")


async def test_store_failure_answers_451(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from store.models import RawInbound

    async def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("database gone")

    monkeypatch.setattr(RawInbound, "save", broken)
    with pytest.raises(aiosmtplib.SMTPDataError) as raised:
        await gw.smtp(b"Subject: x\r\nMessage-ID: <f@x>\r\n\r\nbody\r\n")
    assert raised.value.code == 451
    assert raised.value.message.startswith("4.3.0")
