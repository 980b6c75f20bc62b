"""Issue #18, fault 13 (last item): how a recipient is written in outgoing mail.

A non-ASCII address was written wholly RFC 2047-encoded in `To:` (`=?utf-8?b?…?=`), which
is no address at all (RFC 2047 section 5: an encoded word never stands in an addr-spec).
Now only a display name is encoded; a non-ASCII domain is written in its IDNA form (plain
SMTP, RFC 5890); a non-ASCII local part needs SMTPUTF8 (RFC 6531) and is written as
UTF-8 in the header (RFC 6532). Checked on the bytes a real SMTP server receives.
"""

from __future__ import annotations

from email.header import decode_header
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.app import create_app
from gateway.config import Settings
from mail.sender import MailSender
from store.outbox import PermanentSendError
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smtp_relay import Sink, start_sink


@pytest.fixture
async def gw_relay(aiohttp_client, settings: Settings, botapi: BotApiDouble, clock,  # type: ignore[no-untyped-def]
                   relay: tuple[Sink, int]) -> Gateway:
    relayed = settings.model_copy(update={"smtp_relay": f"127.0.0.1:{relay[1]}"})
    client = await aiohttp_client(create_app(relayed, clock=clock, run_workers=False))
    return Gateway(client, relayed, botapi, clock)


def to_line(raw: bytes) -> bytes:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return next(line for line in head.split(b"\r\n") if line.lower().startswith(b"to:"))


async def confirmation_to(gw: Gateway, sink: Sink, email: str) -> tuple[str, list[str], list[str], bytes]:
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Hałas", "body": "Co noc",
                                                       "email": email})
    assert resp.status == 201, await resp.text()
    await gw.drain()
    [received] = sink.received
    return received


async def test_a_non_ascii_domain_is_written_in_idna_without_smtputf8(
        gw_relay: Gateway, relay: tuple[Sink, int]) -> None:
    _, rcpts, options, raw = await confirmation_to(gw_relay, relay[0], "ewa@żółw.example")
    ace = "ewa@" + "żółw.example".encode("idna").decode()
    assert rcpts == [ace] and "SMTPUTF8" not in [o.upper() for o in options]
    assert to_line(raw) == b"To: " + ace.encode()


async def test_a_non_ascii_local_part_goes_as_smtputf8_and_raw_utf8(
        gw_relay: Gateway, relay: tuple[Sink, int]) -> None:
    _, rcpts, options, raw = await confirmation_to(gw_relay, relay[0], "józef@example.pl")
    assert rcpts == ["józef@example.pl"] and "SMTPUTF8" in [o.upper() for o in options]
    assert to_line(raw) == "To: józef@example.pl".encode()  # RFC 6532, no encoded word


def outbox_row(recipient: str, **payload: str) -> SimpleNamespace:
    return SimpleNamespace(id=1, recipient=recipient, payload={
        "from": "sprawy@milanowek.example", "subject": "Sprawa", "text": "Treść",
        "html": "", "message_id": "<m1@milanowek.example>", **payload})


@pytest.mark.parametrize(("address", "wire"), [
    ("zofia@example.pl", b"zofia@example.pl"),
    ("zofia@gęś.example", b"zofia@" + "gęś.example".encode("idna")),
    ("żaneta@example.pl", "żaneta@example.pl".encode()),
])
async def test_only_the_display_name_is_encoded(relay: tuple[Sink, int], tmp_path: Path,
                                                address: str, wire: bytes) -> None:
    sink, port = relay
    sender = MailSender("milanowek.example", f"127.0.0.1:{port}", str(tmp_path))
    await sender.send(outbox_row(address, to_name="Zażółć Gęślińska"))  # type: ignore[arg-type]
    line = to_line(sink.received[0][3])
    name, _, angle = line[4:].rpartition(b" ")
    assert angle == b"<" + wire + b">"
    [(decoded, charset)] = decode_header(name.decode("ascii"))
    assert decoded.decode(charset or "ascii") == "Zażółć Gęślińska"
    assert sink.received[0][1] == [wire.decode()]


async def test_a_relay_without_smtputf8_refuses_for_good(tmp_path: Path) -> None:
    sink, server, port = await start_sink(utf8=False)
    try:
        sender = MailSender("milanowek.example", f"127.0.0.1:{port}", str(tmp_path))
        with pytest.raises(PermanentSendError):  # retrying cannot help: try the next channel
            await sender.send(outbox_row("józef@example.pl"))  # type: ignore[arg-type]
    finally:
        server.close()
        await server.wait_closed()
    assert not sink.received
