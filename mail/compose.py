"""An outbox email payload → a MIME message (text plus HTML alternative)."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.utils import formatdate

from mail.loops import AUTO_SUBMITTED_VALUE, LOOP_HEADER


def compose(payload: dict, recipient: str, mail_domain: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = payload["from"]
    msg["To"] = recipient
    msg["Subject"] = payload["subject"]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = payload["message_id"]
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
    if payload.get("references"):
        msg["References"] = " ".join(payload["references"])
    # RFC 3834: our mail is automatic, so robots must not answer it; X-Loop marks it ours
    msg["Auto-Submitted"] = AUTO_SUBMITTED_VALUE
    msg[LOOP_HEADER] = f"gateway@{mail_domain}"
    msg.set_content(payload["text"])
    if payload.get("html"):
        msg.add_alternative(payload["html"], subtype="html")
    for item in payload.get("attachments", []):
        maintype, _, subtype = item["content_type"].partition("/")
        msg.add_attachment(base64.b64decode(item["data"]), maintype=maintype,
                           subtype=subtype or "octet-stream", filename=item["filename"])
    return msg
