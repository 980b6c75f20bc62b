"""A stored raw mail → the gateway's message, or None and why it gets no answer.

The mail side of the one small function each channel offers the inbox
(`bots/inbound.read_stored` is the Telegram side): parse (MIME), refuse automatic mail
(RFC 3834 loop protection), and say whether the From domain is DMARC-proven. Runs in a
worker thread: MIME parsing of a large mail and the DKIM check's DNS lookups take time.
"""

from __future__ import annotations

from typing import Any

from handlers.message import InboundMessage
from mail import bounces, loops
from mail import parse as mail_parse
from mail.authenticate import dmarc_pass
from store.models import RawInbound


def read_stored(row: RawInbound, ctx: Any, bot: Any = None) -> tuple[InboundMessage | None, str]:
    raw = bytes(row.payload)
    if bounces.is_bounce_mailbox(row.envelope.get("mailbox", "")):
        return read_bounce(row, raw, ctx)
    message = mail_parse.parse_bytes(raw)
    sender = row.envelope.get("from", "")
    reason = loops.automatic_reason(message, sender, ctx.mail_domain)
    if reason:
        return None, f"automatic mail: {reason}"
    msg = mail_parse.to_inbound(message, sender, row.envelope.get("mailbox", ""), row.id)
    if ctx.mail_auth is not None and dmarc_pass(raw, message, ctx.mail_auth):
        msg.proof = "dmarc"
    return msg, ""


def read_bounce(row: RawInbound, raw: bytes, ctx: Any) -> tuple[InboundMessage | None, str]:
    """A report sent to one of our bounce addresses → a message to the `bounce` mailbox:
    the kind (hard, soft, complaint) as its command, the outbox row's id as its argument
    (handlers/bounces.py). SMTP accepted only addresses with our MAC; checked again here,
    as nothing unchecked should reach a handler."""
    outbox_id = bounces.bounced_outbox(row.envelope.get("mailbox", ""),
                                       ctx.signing_secret.encode())
    if outbox_id is None:
        return None, "bounce address not ours"
    report = bounces.read_report(raw)
    if report.kind is None:
        return None, "bounce not understood"
    return InboundMessage(channel="email", address="", mailbox=bounces.PREFIX,
                          command=report.kind, args=[str(outbox_id)], text=report.detail,
                          inbound_id=row.id), ""
