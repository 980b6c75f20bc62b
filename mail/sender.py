"""Outbound email: to the relay over SMTP, or as `.eml` files when no relay is set."""

from __future__ import annotations

import asyncio
import io
import logging
from email.generator import BytesGenerator
from email.message import Message
from pathlib import Path

import aiosmtplib

from mail.bounces import bounce_address
from mail.compose import POLICY, compose, recipient
from mail.dkim import DkimSigner
from store.files import announcement_attachment
from store.models import Outbox
from store.outbox import AddressFailing, PermanentSendError, SendError, TransientSendError

log = logging.getLogger(__name__)

#: enhanced status codes (RFC 3463) of a refusal that is about the mailbox itself, not
#: about us or the message: bad destination mailbox or system (5.1.1, 5.1.2), a domain
#: that takes no mail (5.1.10, RFC 7505's null MX), a disabled mailbox (5.2.1). A bare
#: 550 says too little: a relay refusing to relay (5.7.1) must not mark anybody failing
ADDRESS_GONE = {"5.1.1": "mailbox_unknown", "5.1.2": "mailbox_unknown",
                "5.1.10": "mailbox_unknown", "5.2.1": "mailbox_disabled"}


def refused(code: int, message: str) -> SendError:
    """The recipient refused: later (4xx, a greylisting relay), never (5xx), and about the
    address itself when its enhanced code says so."""
    detail = f"recipient refused: {code} {message}"
    if code < 500:
        return TransientSendError(detail)
    reason = ADDRESS_GONE.get(message.split(" ", 1)[0])
    return AddressFailing(reason, detail) if reason else PermanentSendError(detail)


class MailSender:
    channel = "email"

    def __init__(self, mail_domain: str, relay: str | None, spool_dir: str,
                 dkim: DkimSigner | None = None, bounce_key: bytes | None = None) -> None:
        self.mail_domain = mail_domain
        self.relay = relay
        self.spool = Path(spool_dir)
        #: signs every message, relayed or spooled (EMIL_DKIM_SELECTOR, EMIL_DKIM_KEY_FILE)
        self.dkim = dkim
        #: with it, each message's envelope sender is its own bounce address (VERP,
        #: mail/bounces.py), so a bounce names the outbox row that failed
        self.bounce_key = bounce_key

    def flatten(self, message: Message, linesep: str) -> bytes:
        """The message's bytes as they will leave, signed when a key is set: the signature
        covers these exact bytes, so nothing may write the message again after it."""
        out = io.BytesIO()
        BytesGenerator(out, mangle_from_=False, policy=POLICY.clone(linesep=linesep)).flatten(message)
        data = out.getvalue()
        return self.dkim.sign(data) if self.dkim is not None else data

    async def send(self, row: Outbox) -> None:
        payload = row.payload
        if payload.get("attachment_of"):
            shared = await announcement_attachment(payload["attachment_of"])
            payload = {**payload, "attachments": [shared] if shared else []}
        message = compose(payload, row.recipient, self.mail_domain)
        if not self.relay:
            await asyncio.to_thread(self._spool, row, self.flatten(message, "\n"))
            return
        host, _, port = self.relay.rpartition(":")
        envelope, _ = recipient(row.recipient)
        sender = (bounce_address(row.id, self.bounce_key, self.mail_domain) if self.bounce_key
                  else row.payload["from"])
        # a non-ASCII envelope address needs SMTPUTF8 (the message then carries it as UTF-8
        # in `To:`); an IDNA domain needs neither (mail/compose.py). The message goes as
        # the bytes that were signed (RFC 5321 line endings)
        options = [] if (envelope + sender).isascii() else ["SMTPUTF8"]
        try:
            refusals, reply = await aiosmtplib.send(
                self.flatten(message, "\r\n"), hostname=host, port=int(port), timeout=30,
                sender=sender, recipients=[envelope], mail_options=options,
            )
        except aiosmtplib.SMTPNotSupported as error:
            # a relay without SMTPUTF8 can never take this address: the next channel, now
            raise PermanentSendError(str(error)) from error
        except aiosmtplib.SMTPRecipientsRefused as error:
            # a message has one recipient: the first refusal is the one
            [first, *_] = error.recipients
            raise refused(first.code, first.message) from error
        except aiosmtplib.SMTPResponseException as error:
            if 500 <= error.code < 600:
                raise PermanentSendError(f"{error.code} {error.message}") from error
            raise TransientSendError(f"{error.code} {error.message}") from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise TransientSendError(str(error) or type(error).__name__) from error
        # aiosmtplib does not raise when only some recipients are refused (NOTES.md)
        if refusals:
            answer = next(iter(refusals.values()))
            raise refused(answer.code, answer.message)

    def _spool(self, row: Outbox, data: bytes) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        target = self.spool / f"{row.id:010d}.eml"
        temp = target.with_suffix(".tmp")
        temp.write_bytes(data)
        temp.replace(target)
