"""Inbound SMTP (aiosmtpd): check in RCPT, store in DATA, work in a worker.

`RCPT` refuses unknown mailboxes and foreign domains with precise codes; `DATA` stores
the raw message, deduplicated by Message-ID and content, and only then answers `250`.
A failure before the message is stored answers `451` so the sending server retries.
Parsing and answering happen later, in the inbox worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from aiosmtpd.smtp import SMTP, Envelope, Session
from tortoise.exceptions import IntegrityError

from handlers.netaddr import Network, is_trusted, limit_key, parse_address
from handlers.ratelimit import RateLimiter
from handlers.text import clean_line
from mail.bounces import bounced_outbox, is_bounce_mailbox
from store.models import RawInbound

log = logging.getLogger(__name__)

_HEADER_END = (b"\r\n\r\n", b"\n\n")


def dedup_key(raw: bytes, mailbox: str) -> str:
    """Same Message-ID and same content → same key, whatever `Received:` lines a retrying
    relay added on the way."""
    for end in _HEADER_END:
        head, sep, body = raw.partition(end)
        if sep:
            break
    else:
        head, body = raw, b""
    message_id = b""
    for line in head.splitlines():
        if line.lower().startswith(b"message-id:"):
            message_id = line.split(b":", 1)[1].strip()
            break
    digest = hashlib.sha256()
    digest.update(mailbox.encode() + b"\0" + message_id + b"\0")
    digest.update(body if message_id else raw)
    return digest.hexdigest()


#: more `multipart/` declarations than any real mail has (a forwarded thread: a dozen)
MAX_MULTIPARTS = 100


def too_deep(raw: bytes) -> bool:
    """A linear count that bounds MIME nesting before anything parses the message."""
    return raw.lower().count(b"multipart/") > MAX_MULTIPARTS


class GatewaySMTPHandler:
    def __init__(
        self,
        domain: str,
        mailboxes: Iterable[str],
        now: Callable[[], datetime],
        on_stored: Callable[[], None] = lambda: None,
        limiter: RateLimiter | None = None,
        peer_limiter: RateLimiter | None = None,
        trusted_peers: tuple[Network, ...] = (),
        bounce_key: bytes | None = None,
    ) -> None:
        self.domain = domain.lower()
        self.mailboxes = set(mailboxes)
        self.now = now
        self.on_stored = on_stored
        #: new mail per envelope sender; over it, RCPT answers 450 and the sender's server
        #: retries later (RFC 5321 section 4.2.5: 4yz is transient)
        self.limiter = limiter
        #: new mail per connecting host (an IPv4 address, an IPv6 /64), whatever envelope
        #: senders it names: rotating MAIL FROM must not buy a stranger unlimited 25 MiB
        #: mails (issue #18). The upstream MTAs in `trusted_peers` relay everybody's mail
        #: and are not counted (they keep limits of their own).
        self.peer_limiter = peer_limiter
        self.trusted_peers = trusted_peers
        #: checks the MAC of our bounce addresses (VERP, mail/bounces.py)
        self.bounce_key = bounce_key

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        local, _, domain = address.lower().rpartition("@")
        if domain != self.domain:
            return "550 5.7.1 Relaying denied"
        if is_bounce_mailbox(local):
            # only an address we gave a message of ours: a forged one could mark somebody's
            # address failing
            if self.bounce_key is None or bounced_outbox(local, self.bounce_key) is None:
                return "550 5.1.1 Unknown mailbox"
        elif local not in self.mailboxes:
            return "550 5.1.1 Unknown mailbox"
        if self.limiter is not None:
            sender = (envelope.mail_from or "<>").lower()[:320]
            if self.limiter.take(f"{local}:{sender}") > 0:
                return "450 4.7.1 Too many messages from this sender, try again later"
        if self.peer_limiter is not None and session.peer:
            peer = parse_address(str(session.peer[0]))
            if (peer is None or not is_trusted(peer, self.trusted_peers)) and \
                    self.peer_limiter.take(limit_key(str(peer or session.peer[0]))) > 0:
                return "450 4.7.1 Too many messages from your host, try again later"
        envelope.rcpt_tos.append(address.lower())
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if too_deep(raw):
            # Python's MIME parser recurses once per nesting level and fails past ~900;
            # no real mail nests more than a few (RFC 5322 sets no limit: ours is stated)
            return "554 5.6.0 Message structure too complex (too many nested MIME parts)"
        try:
            for rcpt in envelope.rcpt_tos:
                await self._store(raw, rcpt.split("@", 1)[0], envelope.mail_from or "",
                                  str(session.peer[0]) if session.peer else "")
        except Exception:
            log.exception("could not store inbound mail; asking the sender to retry")
            return "451 4.3.0 Temporary failure, please try again later"
        self.on_stored()
        return "250 2.0.0 Message accepted"

    async def _store(self, raw: bytes, mailbox: str, mail_from: str, peer: str) -> None:
        """One row per mailbox; a relay's retry of a stored message changes nothing.

        `save()` runs the model's prepared INSERT; `bulk_create(ignore_conflicts=True)`
        builds a new statement every call, which cost more than the rest of DATA."""
        # the envelope is JSON, which PostgreSQL refuses with a NUL in it (451 for ever)
        row = RawInbound(channel="email", external_id=dedup_key(raw, mailbox),
                         envelope={"from": clean_line(mail_from), "mailbox": mailbox,
                                   "peer": peer},
                         payload=raw, received_at=self.now())
        try:
            await row.save()
        except IntegrityError:
            log.info("duplicate of stored mail %s ignored", row.external_id[:12])


def smtp_factory(handler: GatewaySMTPHandler, max_size: int, hostname: str) -> Callable[[], SMTP]:
    def build() -> SMTP:
        return SMTP(handler, data_size_limit=max_size, hostname=hostname,
                    enable_SMTPUTF8=True, decode_data=False, ident="e-Milanowek gateway")

    return build
