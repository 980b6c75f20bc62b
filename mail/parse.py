"""MIME in the wild → InboundMessage.

Parses with the `compat32` policy into `EmailMessage` objects and decodes what we read
ourselves (RFC 2047 headers with `email.header`, bodies from their transfer encoding):
`policy.default` re-parses every header through its header registry on every access,
which made parsing the largest cost of an inbound mail (see bench/smtp_inbound.py).
Mail with wrong or missing charsets is decoded by trying the declared charset, then
UTF-8, then the Polish legacy charsets (Windows-1250, ISO-8859-2), never failing.
HTML-only mail is turned into text. No I/O here.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parseaddr
from html.parser import HTMLParser

from handlers.addresses import normalise_email
from handlers.message import Attachment, InboundMessage

_FALLBACK_CHARSETS = ("utf-8", "cp1250", "iso-8859-2")
_MSGID = re.compile(r"<[^<>\s]+>")


def parse_bytes(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, _class=EmailMessage, policy=policy.compat32)  # type: ignore[return-value]


def header(msg: EmailMessage, name: str) -> str:
    """A header's text with RFC 2047 encoded words decoded; never raises."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (UnicodeError, LookupError, ValueError, HeaderParseError):
        return str(value)


def decode_part(part: EmailMessage) -> str:
    """A text part's content, whatever its charset claims."""
    data = part.get_payload(decode=True) or b""
    declared = part.get_content_charset()
    if declared in ("us-ascii", "ascii"):
        declared = None  # the default when none is given; 8-bit data says otherwise
    for charset in ((declared,) if declared else ()) + _FALLBACK_CHARSETS:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


class _TextFromHtml(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):  # type: ignore[no-untyped-def]
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = decode_part(part)  # type: ignore[arg-type]
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").strip()


def attachments(msg: EmailMessage) -> list[Attachment]:
    found = []
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True) or b""
        raw_name = part.get_filename()
        name = str(make_header(decode_header(raw_name))) if raw_name else "załącznik"
        found.append(Attachment(filename=name, content_type=part.get_content_type(), data=data))
    return found


def message_ids(value: str | None) -> list[str]:
    return _MSGID.findall(str(value or ""))


def to_inbound(msg: EmailMessage, envelope_from: str, mailbox: str, inbound_id: int = 0
               ) -> InboundMessage:
    """One parsed email as the gateway's message type.

    The sender is the `From` address, never `Reply-To`: anyone can set either, but only
    `From` is what DMARC authenticates, and answering `From` means a forger can only make
    us write to the real owner (handlers/identity.py). A From header longer than any real
    one is not parsed at all."""
    from_header = header(msg, "From")
    name, address = parseaddr(from_header) if len(from_header) <= 2000 else ("", "")
    address = normalise_email(address) or ""
    if not address:
        address = normalise_email(envelope_from) or envelope_from[:254]
    refs = message_ids(msg.get("References")) + message_ids(msg.get("In-Reply-To"))
    subject = " ".join(header(msg, "Subject").split())
    return InboundMessage(
        channel="email",
        address=address.strip().lower(),
        display_name=name,
        text=body_text(msg),
        subject=subject,
        mailbox=mailbox,
        message_id=(message_ids(msg.get("Message-ID")) or [None])[0],
        references=list(dict.fromkeys(refs)),
        attachments=attachments(msg),
        language_hint="en" if str(msg.get("Content-Language", "")).startswith("en") else None,
        inbound_id=inbound_id,
    )
