"""Mail per connecting host: a stranger rotating envelope senders is still one host
(issue #18: one visitor could fill the disk with 25 MiB mails, each 'from' someone new)."""

from __future__ import annotations

import aiosmtplib
import pytest

from gateway.config import Settings
from store.models import RawInbound
from tests.conftest import Gateway, make_mail


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Two mails an hour per host, and no trusted relay: the tests connect from loopback,
    which is trusted by default (a local MTA in front of the gateway)."""
    return settings.model_copy(update={"rate_mail_per_peer": 2, "smtp_trusted_peers": ""})


async def test_a_host_rotating_envelope_senders_is_limited_as_one(gw: Gateway) -> None:
    for n in range(2):
        code, _ = await gw.smtp(make_mail("Wniosek", "Treść.", sender=f"a{n}@example.pl"),
                                sender=f"a{n}@example.pl")
        assert code == 250
    with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
        await gw.smtp(make_mail("Wniosek", "Treść.", sender="a9@example.pl"), sender="a9@example.pl")
    assert refused.value.code == 450 and "host" in refused.value.message
    assert await RawInbound.all().count() == 2


async def test_a_trusted_relay_is_not_counted_per_host() -> None:
    """The same limit, but the peer is a listed upstream MTA: everybody's mail comes from
    it, so it is not counted (while a stranger's host is)."""
    from datetime import datetime, timezone

    from aiosmtpd.smtp import Envelope, Session

    from handlers.netaddr import parse_networks
    from handlers.ratelimit import Limit, RateLimiter
    from mail.server import GatewaySMTPHandler

    handler = GatewaySMTPHandler("milanowek.example", ["sprawy"], lambda: datetime.now(timezone.utc),
                                 peer_limiter=RateLimiter(Limit(2, 2), lambda: 0.0),
                                 trusted_peers=parse_networks("10.0.0.0/8"))

    async def rcpt(peer: str, n: int) -> str:
        session, envelope = Session(loop=None), Envelope()  # type: ignore[arg-type]
        session.peer = (peer, 25)
        envelope.mail_from = f"x{n}@example.pl"
        return await handler.handle_RCPT(None, session, envelope,  # type: ignore[arg-type]
                                         "sprawy@milanowek.example", [])

    assert [(await rcpt("10.1.2.3", n))[:3] for n in range(5)] == ["250"] * 5
    assert [(await rcpt("203.0.113.7", n))[:3] for n in range(3)] == ["250", "250", "450"]
    # an IPv6 host counts by its /64: a fresh address in it is the same host
    assert (await rcpt("2001:db8::1", 0))[:3] == "250"
    assert (await rcpt("2001:db8::2", 1))[:3] == "250"
    assert (await rcpt("2001:db8::3", 2))[:3] == "450"
