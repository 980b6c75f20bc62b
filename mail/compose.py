"""An outbox email payload → MIME bytes (text plus HTML alternative, UTF-8).

Built with the `compat32` MIME classes: `policy.default` re-parses every header it is
given, which made composing a reply cost more than handling the mail it answers.
"""

from __future__ import annotations

import base64
from email import charset as email_charset
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate

from mail.loops import AUTO_SUBMITTED_VALUE, LOOP_HEADER

# quoted-printable keeps Polish text readable in the raw message (base64 is the default)
_UTF8_QP = email_charset.Charset("utf-8")
_UTF8_QP.body_encoding = email_charset.QP


def _text(body: str, subtype: str) -> MIMEText:
    part = MIMEText("", subtype, None)
    part.set_payload(body, _UTF8_QP)
    return part


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def compose(payload: dict, recipient: str, mail_domain: str) -> MIMEMultipart | MIMEText:
    body: MIMEMultipart | MIMEText
    if payload.get("html"):
        body = MIMEMultipart("alternative")
        body.attach(_text(payload["text"], "plain"))
        body.attach(_text(payload["html"], "html"))
    else:
        body = _text(payload["text"], "plain")
    attachments = payload.get("attachments") or []
    msg: MIMEMultipart | MIMEText
    if attachments:
        msg = MIMEMultipart("mixed")
        msg.attach(body)
        for item in attachments:
            part = MIMEApplication(base64.b64decode(item["data"]),
                                   _subtype=item["content_type"].partition("/")[2] or "octet-stream")
            part.replace_header("Content-Type", item["content_type"])
            part.add_header("Content-Disposition", "attachment",
                            filename=("utf-8", "", item["filename"]))
            msg.attach(part)
    else:
        msg = body
    msg["From"] = formataddr(("", payload["from"]))
    msg["To"] = recipient
    msg["Subject"] = _header(payload["subject"])
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = payload["message_id"]
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
    if payload.get("references"):
        msg["References"] = " ".join(payload["references"])
    # RFC 3834: our mail is automatic, so robots must not answer it; X-Loop marks it ours
    msg["Auto-Submitted"] = AUTO_SUBMITTED_VALUE
    msg[LOOP_HEADER] = f"gateway@{mail_domain}"
    return msg
