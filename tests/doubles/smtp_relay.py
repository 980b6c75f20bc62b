"""An SMTP relay double: a real aiosmtpd server on loopback that keeps what it is given
(envelope, options, raw bytes), for tests of what outgoing mail looks like on the wire.
The `relay` fixture (tests/conftest.py) starts one per test."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope


@dataclass
class Sink:
    """An SMTP relay that keeps what it is given (envelope, options, raw bytes)."""

    received: list[tuple[str, list[str], list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: object, envelope: Envelope) -> str:
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos),
                              list(envelope.mail_options), bytes(envelope.content or b"")))
        return "250 OK"


async def start_sink(utf8: bool = True) -> tuple[Sink, asyncio.Server, int]:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, enable_SMTPUTF8=utf8),
                                      "127.0.0.1", 0)
    return sink, server, server.sockets[0].getsockname()[1]
