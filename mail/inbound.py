"""A stored raw mail → the gateway's message, or None and why it gets no answer.

The mail side of the one small function each channel offers the inbox
(`bots/inbound.read_stored` is the Telegram side): parse (MIME), refuse automatic mail
(RFC 3834 loop protection), and say whether the From domain is DMARC-proven. Runs in a
worker thread: MIME parsing of a large mail and the DKIM check's DNS lookups take time.
"""

from __future__ import annotations

from typing import Any

from handlers.message import InboundMessage
from mail import loops
from mail import parse as mail_parse
from mail.authenticate import dmarc_pass
from store.models import RawInbound


def read_stored(row: RawInbound, ctx: Any, bot: Any = None) -> tuple[InboundMessage | None, str]:
    raw = bytes(row.payload)
    message = mail_parse.parse_bytes(raw)
    sender = row.envelope.get("from", "")
    reason = loops.automatic_reason(message, sender, ctx.mail_domain)
    if reason:
        return None, f"automatic mail: {reason}"
    msg = mail_parse.to_inbound(message, sender, row.envelope.get("mailbox", ""), row.id)
    if ctx.mail_auth is not None and dmarc_pass(raw, message, ctx.mail_auth):
        msg.proof = "dmarc"
    return msg, ""
