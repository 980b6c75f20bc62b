"""Issue #19: every outgoing mail is DKIM-signed (RFC 6376) when a key is configured.

Checked with dkimpy's own `dkim.verify`, answering the DNS lookup from the test key
(tests/mailauth.py), on the bytes a real SMTP relay receives and on the `.eml` spool; a
copy changed on the way fails. `emilanowek dkim keygen` writes a key whose printed DNS
record verifies what it signed; a key that cannot be read stops the start.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from gateway.app import create_app
from gateway.cli import main
from gateway.config import Settings
from mail.dkim import SIGNED_HEADERS
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smtp_relay import Sink
from tests.mailauth import KEYS, SELECTOR, dns_for

DOMAIN = "milanowek.example"


def signing(settings: Settings, **more: object) -> Settings:
    return settings.model_copy(update={"dkim_selector": SELECTOR.decode(),
                                       "dkim_key_file": str(KEYS / "test-only.key"), **more})


async def confirmation(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/cases", json={
        "subject": "Dziura w chodniku", "body": "Przy ul. Kościuszki 12.",
        "email": "jan@example.pl"})
    assert resp.status == 201, await resp.text()
    await gw.drain()


def signature_tags(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode()
    value = re.search(r"^DKIM-Signature:(.*?)(?=^\S)", head + "\nX:", re.M | re.S)
    assert value, head
    tags = {}
    for part in "".join(value.group(1).split()).split(";"):
        if "=" in part:
            name, _, tag = part.partition("=")
            tags[name] = tag
    return tags


async def test_relayed_mail_is_signed_and_verifies(aiohttp_client, settings: Settings,  # type: ignore[no-untyped-def]
                                                   botapi: BotApiDouble, clock,
                                                   relay: tuple[Sink, int]) -> None:
    relayed = signing(settings, smtp_relay=f"127.0.0.1:{relay[1]}")
    gw = Gateway(await aiohttp_client(create_app(relayed, clock=clock, run_workers=False)),
                 relayed, botapi, clock)
    await confirmation(gw)
    [(_, _, _, raw)] = relay[0].received
    assert dkim.verify(raw, dnsfunc=dns_for(DOMAIN))
    tags = signature_tags(raw)
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == ("rsa-sha256", "relaxed/relaxed",
                                                            DOMAIN, "test")
    signed = tags["h"].lower().split(":")
    for name in SIGNED_HEADERS:
        assert name.lower() in signed
    # a copy changed on the way no longer verifies: the subject, or one word of the body
    head, _, body = raw.partition(b"\r\n\r\n")
    assert not dkim.verify(re.sub(rb"(?m)^Subject:.*$", b"Subject: Wygrana!", head)
                           + b"\r\n\r\n" + body, dnsfunc=dns_for(DOMAIN))
    assert not dkim.verify(head + b"\r\n\r\n" + body.replace(b"UM-", b"XX-", 1),
                           dnsfunc=dns_for(DOMAIN))


async def test_spooled_mail_is_signed_too(aiohttp_client, settings: Settings,  # type: ignore[no-untyped-def]
                                          botapi: BotApiDouble, clock) -> None:
    signed = signing(settings)
    gw = Gateway(await aiohttp_client(create_app(signed, clock=clock, run_workers=False)),
                 signed, botapi, clock)
    await confirmation(gw)
    [path] = sorted(Path(settings.sent_mail_dir).glob("*.eml"))
    raw = path.read_bytes()
    assert raw.startswith(b"DKIM-Signature:")
    assert dkim.verify(raw, dnsfunc=dns_for(DOMAIN))


async def test_without_a_key_mail_goes_unsigned(gw: Gateway) -> None:
    await confirmation(gw)
    [path] = sorted(Path(gw.settings.sent_mail_dir).glob("*.eml"))
    assert b"DKIM-Signature" not in path.read_bytes()


def test_keygen_writes_a_private_key_and_prints_a_record_that_verifies(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    result = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "s2026",
                                       "--key-file", str(key_file), "--domain", DOMAIN])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    record = result.stdout.strip()
    assert record.startswith(f"s2026._domainkey.{DOMAIN} IN TXT \"v=DKIM1; k=rsa; p=")
    # the zone file's strings joined are the record's value
    value = "".join(re.findall(r'"([^"]*)"', record))

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if name.decode().rstrip(".") == f"s2026._domainkey.{DOMAIN}" \
            else None

    settings = Settings(_env_file=None, mail_domain=DOMAIN, dkim_selector="s2026",  # type: ignore[call-arg]
                        dkim_key_file=str(key_file))
    signer = settings.mail_signer()
    assert signer is not None
    message = (b"From: sprawy@milanowek.example\r\nTo: jan@example.pl\r\nSubject: Test\r\n"
               b"Message-ID: <1@milanowek.example>\r\n\r\nTre\xc5\x9b\xc4\x87.\r\n")
    assert dkim.verify(signer.sign(message), dnsfunc=lookup)
    # a published key is never overwritten
    again = CliRunner().invoke(main, ["dkim", "keygen", "--selector", "s2026",
                                      "--key-file", str(key_file), "--domain", DOMAIN])
    assert again.exit_code != 0 and "exists" in again.output


def test_a_key_that_cannot_be_read_refuses_to_start(tmp_path: Path) -> None:
    base = {"_env_file": None, "production": True, "smtp_relay": "127.0.0.1:25",
            "dkim_selector": "s1"}
    with pytest.raises(ValidationError, match="cannot be read"):
        Settings(**base, dkim_key_file=str(tmp_path / "missing.pem"))  # type: ignore[arg-type]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    with pytest.raises(ValidationError, match="not a PEM RSA private key"):
        Settings(**base, dkim_key_file=str(garbage))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="go together"):
        Settings(_env_file=None, dkim_selector="s1")  # type: ignore[call-arg]
