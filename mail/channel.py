"""Email as a channel (handlers/channels.py): registered by gateway/app.py.

Mail proves nothing by itself: the sender is the `From` address (never `Reply-To`, which
anyone sets), and our answers go there, so a forger can only make us write to the real
owner. A mail is proven when its From domain passed DMARC (decided by the reader,
mail/inbound.py) or when it replies to a Message-ID we sent to that address — only its
reader can know one (`thread`). A case's access code in the text is a third proof, checked
by handlers/cases.py for that case alone. Mail is addressed to a service mailbox, whose
handlers ask for proof before they change anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers import router
from handlers.addresses import normalise_email
from handlers.channels import Channel, Envelope, Outgoing
from handlers.context import ServiceContext
from handlers.message import InboundMessage
from handlers.notify import email_payload
from handlers.render import Renderer
from mail import inbound, unread
from mail.dkim import DkimSigner
from mail.sender import MailSender
from store.models import RawInbound, SentMail

#: a reply's References are searched this far back (a long thread's are the newest)
REFERENCES_CHECKED = 50


async def prove(msg: InboundMessage) -> str | None:
    """`thread` if the mail replies to one we sent to its sender, else None."""
    if msg.references and await SentMail.filter(
            message_id__in=msg.references[-REFERENCES_CHECKED:], recipient=msg.address).exists():
        return "thread"
    return None


def glance(row: RawInbound, ctx: ServiceContext) -> unread.Glance:
    """Sender, subject and loop verdict of a mail the reader could not read."""
    return unread.glance(bytes(row.payload), row.envelope or {}, ctx.mail_domain,
                         router.MAILBOXES)


def render(renderer: Renderer, template: str, lang: str, context: dict[str, Any]
           ) -> dict[str, str]:
    """{subject, text, html}: the three blocks of `<template>.email.j2`."""
    return renderer.email(template, lang, context)


def payload(ctx: ServiceContext, rendered: dict[str, str], envelope: Envelope
            ) -> dict[str, Any]:
    """A mail from the envelope's mailbox, threaded (RFC 5322 In-Reply-To and
    References) and tagged with its case; a reply whose template has no subject
    answers "Re: <their subject>"."""
    out = email_payload(ctx, rendered, mailbox=envelope.mailbox, case=envelope.case,
                        in_reply_to=envelope.in_reply_to, references=list(envelope.references))
    if envelope.answering is not None and not rendered["subject"]:
        out["subject"] = f"Re: {envelope.answering}".strip()
    if envelope.unsubscribe is not None:
        out["list"] = envelope.unsubscribe  # List-Unsubscribe(-Post) and List-Id
    return out


def channel(mail_domain: str, relay: str | None, spool_dir: str,
            dkim: DkimSigner | None = None,
            bounce_key: Callable[[], bytes | None] = lambda: None) -> Channel:
    """The email channel: SMTP in (mail/server.py stores the raw mail), the relay or the
    spool folder out, every message DKIM-signed with `dkim` and sent from its own bounce
    address (`bounce_key`: read when the lane starts, once the store's secret is known)."""
    return Channel(
        name="email",
        read=lambda row, ctx: inbound.read_stored(row, ctx),
        outgoing=lambda: Outgoing(MailSender(mail_domain, relay, spool_dir, dkim=dkim,
                                             bounce_key=bounce_key())),
        templates=("email",),
        render=render,
        payload=payload,
        normalise=normalise_email,
        prove=prove,
        glance=glance,
        raw_file=("eml", "message/rfc822"),
        # MIME parsing of a large mail and the DKIM check's DNS lookups take time
        slow=True,
        mailboxes=True,
        opt_out_link=True,
        threaded=True,  # Message-ID, answered by In-Reply-To
        raw_senders=unread.raw_senders,
        raw_head=unread.SENDERS_HEAD,
    )
