"""An outbox email payload → MIME bytes (text plus HTML alternative, UTF-8).

Built with the `compat32` MIME classes: `policy.default` re-parses every header it is
given, which made composing a reply cost more than handling the mail it answers. Three
more choices keep a reply cheap (measured in `bench/smtp_inbound.py`):

- bodies are quoted-printable by `binascii.b2a_qp` (C) rather than `email.quoprimime`,
  which measures every character in Python;
- a multipart gets a random boundary up front, so the generator does not compile a
  regular expression per message to find one that is absent from the text;
- `FastHeaders` writes a short ASCII header as it is; anything else (the Polish subject,
  long `References`) is folded by compat32 as before. Non-ASCII headers are RFC 2047
  base64 (`=?utf-8?b?…?=`), which costs no per-character length estimate.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from email import charset as email_charset
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import Compat32
from email.utils import formataddr, formatdate

from handlers.text import mime_type_or_default
from mail.loops import AUTO_SUBMITTED_VALUE, LOOP_HEADER

_UTF8_HEADER = email_charset.Charset("utf-8")
_UTF8_HEADER.header_encoding = email_charset.BASE64

#: RFC 5322 section 2.1.1: lines SHOULD be at most 78 characters
_MAX_LINE = 78


class FastHeaders(Compat32):
    """compat32, except that a header that needs neither folding nor encoding is written
    as it is (for those the result is byte-for-byte what compat32 writes)."""

    def _fast(self, name: str, value: object) -> str | None:
        if (isinstance(value, str) and value.isascii() and "\n" not in value
                and "\r" not in value and len(name) + 2 + len(value) <= _MAX_LINE):
            return f"{name}: {value}{self.linesep}"
        return None

    def fold(self, name: str, value: str) -> str:
        return self._fast(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        fast = self._fast(name, value)
        return fast.encode("ascii") if fast else super().fold_binary(name, value)


POLICY = FastHeaders()


def _text(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8", policy=POLICY)
    part["Content-Transfer-Encoding"] = "quoted-printable"
    # quoted-printable keeps Polish text readable in the raw message
    part.set_payload(binascii.b2a_qp(body.encode("utf-8")).decode("ascii"))
    return part


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, _UTF8_HEADER)


def _multipart(subtype: str) -> MIMEMultipart:
    return MIMEMultipart(subtype, boundary=f"=_emil_{secrets.token_hex(12)}", policy=POLICY)


def recipient(address: str, name: str = "") -> tuple[str, str]:
    """(the address for the SMTP envelope, the `To:` value) for one recipient.

    RFC 2047 section 5: an encoded word may stand in a display name, never in an address,
    yet compat32 encoded a non-ASCII `To:` whole (issue #18). So: a non-ASCII domain
    becomes its IDNA A-label (the stdlib codec that `handlers.addresses` accepted it
    with), which any relay takes; a non-ASCII local part cannot be transcoded and needs
    SMTPUTF8 (RFC 6531), so it is written as UTF-8 (RFC 6532) and aiosmtplib asks the
    relay for SMTPUTF8 when it sees it. Only the display name is ever encoded."""
    local, at, domain = address.strip().rpartition("@")
    if at and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # left as it is: the relay's SMTPUTF8 decides
    envelope = f"{local}@{domain}" if at else address.strip()
    name = " ".join(name.split())  # no CR/LF in a header
    if not name:
        return envelope, envelope
    # formataddr quotes or encodes the name; it insists on an ASCII address, so it is
    # given a stand-in and the real one is put back
    shown = formataddr((name, "a@b"), charset=_UTF8_HEADER)[: -len(" <a@b>")]
    return envelope, f"{shown} <{envelope}>"


def _raw_utf8(value: str) -> str:
    """A header value compat32 writes as the UTF-8 bytes it is (RFC 6532): as
    surrogate-escaped text, which its 8-bit generator writes unchanged."""
    return value if value.isascii() else value.encode("utf-8").decode("ascii", "surrogateescape")


def compose(payload: dict, recipient_address: str, mail_domain: str) -> Message:
    body: Message
    if payload.get("html"):
        body = _multipart("alternative")
        body.attach(_text(payload["text"], "plain"))
        body.attach(_text(payload["html"], "html"))
    else:
        body = _text(payload["text"], "plain")
    attachments = payload.get("attachments") or []
    msg: Message
    if attachments:
        msg = _multipart("mixed")
        msg.attach(body)
        for item in attachments:
            # checked where it came in; checked again for rows stored before that check
            # (a CR/LF in it failed every copy: issue #18, fault 11)
            content_type = mime_type_or_default(item["content_type"])
            part = MIMEApplication(base64.b64decode(item["data"]),
                                   _subtype=content_type.partition("/")[2], policy=POLICY)
            part.replace_header("Content-Type", content_type)
            part.add_header("Content-Disposition", "attachment",
                            filename=("utf-8", "", item["filename"]))
            msg.attach(part)
    else:
        msg = body
    msg["From"] = formataddr(("", payload["from"]))
    msg["To"] = _raw_utf8(recipient(recipient_address, payload.get("to_name") or "")[1])
    # typeshed's MIME classes take only `str` header values; compat32 takes a `Header` too
    msg["Subject"] = _header(payload["subject"])  # type: ignore[assignment]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = payload["message_id"]
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = payload["in_reply_to"]
    if payload.get("references"):
        msg["References"] = " ".join(payload["references"])
    listed = payload.get("list")
    if listed:
        # RFC 8058: one POST to the https link unsubscribes, with no page and no sign-in;
        # both headers are DKIM-signed (mail/dkim.py), as section 4 requires
        msg["List-Unsubscribe"] = f"<{listed['unsubscribe']}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = listed["id"]
    # RFC 3834: our mail is automatic, so robots must not answer it; X-Loop marks it ours
    msg["Auto-Submitted"] = AUTO_SUBMITTED_VALUE
    msg[LOOP_HEADER] = f"gateway@{mail_domain}"
    return msg
