"""What can still be read of a stored mail that its reader rejected (issue #18, fault 1).

The inbox answers such mail ("we have passed it to the office") and sets it aside for a
clerk; for both it needs the sender, the subject and whether the mail is automatic. This
reads the header block alone, with the most forgiving parser the standard library has
(`BytesHeaderParser`, `compat32`: it keeps what it cannot parse as text), and every step
falls back instead of raising: a From header that cannot be read gives way to the
envelope sender, an undecodable subject to its raw text. It shares nothing with
`mail/parse.py`, so whatever makes that reader fail cannot make this one fail too.
Pure: no I/O.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr

from handlers.addresses import normalise_email
from handlers.text import clean_line
from handlers.unread import Glance
from mail import loops
from store.models import RawInbound

log = logging.getLogger(__name__)

#: the header block is read from this much of the mail at most (real headers: a few KiB;
#: a relay chain with DKIM and ARC: tens of KiB)
HEADER_BYTES = 256 * 1024
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
#: header fields that name who sent a mail (RFC 5322 section 3.6.2), besides the envelope
SENDER_FIELDS = ("From", "Sender", "Reply-To", "Resent-From", "Resent-Sender")
#: how much of a stored mail RODO reads first to find its senders (a header longer than
#: this, hundreds of Received lines, is read whole)
SENDERS_HEAD = 65536


def _text(value: object) -> str:
    """A header's text, RFC 2047 words decoded where they can be, control and bidi
    characters dropped; never raises."""
    if value is None:
        return ""
    try:
        decoded = str(make_header(decode_header(str(value))))
    except Exception:  # noqa: BLE001 - any undecodable word: keep the text as it came
        try:
            decoded = str(value)
        except Exception:  # noqa: BLE001 - a header object that cannot even print itself
            return ""
    return " ".join(clean_line(decoded).split())


def _headers(raw: bytes) -> EmailMessage:
    try:
        return BytesHeaderParser(_class=EmailMessage, policy=compat32).parsebytes(  # type: ignore[return-value]
            raw[:HEADER_BYTES])
    except Exception:  # noqa: BLE001 - nothing readable: the envelope has to do
        log.warning("not even the headers of a mail could be read", exc_info=True)
        return EmailMessage()


def _address(headers: EmailMessage, envelope_from: str) -> str:
    try:
        from_header = _text(headers.get("From"))
        _, address = parseaddr(from_header) if len(from_header) <= 2000 else ("", "")
        found = normalise_email(address)
    except Exception:  # noqa: BLE001
        found = None
    return (found or normalise_email(envelope_from) or "").lower()


def _automatic(headers: EmailMessage, envelope_from: str, our_domain: str) -> str | None:
    try:
        return loops.automatic_reason(headers, envelope_from, our_domain)
    except Exception:  # noqa: BLE001 - headers past reading: the envelope's rules still hold
        return loops.automatic_reason(EmailMessage(), envelope_from, our_domain)


def glance(raw: bytes, envelope: dict, our_domain: str, our_mailboxes: Iterable[str]) -> Glance:
    """Sender, subject and loop verdict of a mail nothing else could read; never raises."""
    envelope_from = str(envelope.get("from") or "")
    headers = _headers(raw)
    address = _address(headers, envelope_from)
    automatic = _automatic(headers, envelope_from, our_domain)
    local, _, domain = address.rpartition("@")
    if domain == our_domain.lower() and local in {*our_mailboxes, "gateway"}:
        automatic = automatic or "our own address"  # answering it would write to ourselves
    if not address:
        automatic = automatic or "no sender address"
    try:
        ids = _MSGID.findall(str(headers.get("Message-ID") or ""))
        refs = (_MSGID.findall(str(headers.get("References") or ""))
                + _MSGID.findall(str(headers.get("In-Reply-To") or "")))
        language = str(headers.get("Content-Language") or "").strip().lower()
    except Exception:  # noqa: BLE001
        ids, refs, language = [], [], ""
    return Glance(address=address, subject=_text(headers.get("Subject"))[:300], size=len(raw),
                  automatic=automatic, message_id=ids[0] if ids else None,
                  references=list(dict.fromkeys(refs))[-10:],
                  language_hint="en" if language.startswith("en") else None)


def mail_senders(envelope_from: str, head: bytes) -> set[str]:
    """Every address a raw mail names as its sender: the envelope's and those of the
    header fields in SENDER_FIELDS, normalised as identities are. A mailing list or a
    forwarding service puts its own address in the envelope and leaves the person's in
    `From`, so the envelope alone misses their mail (RODO must find it all)."""
    found = {normalise_email(envelope_from) or ""}
    try:
        header = BytesHeaderParser(policy=compat32).parsebytes(head)
        values = [str(v) for name in SENDER_FIELDS for v in header.get_all(name, [])]
        found |= {normalise_email(address) or "" for _, address in getaddresses(values)}
    except Exception:  # noqa: BLE001 - a header nobody can parse names nobody
        log.info("a raw mail's header could not be read for its senders")
    found.discard("")
    return found


def raw_senders(row: RawInbound, partial: bool) -> set[str] | None:
    """The mail channel's `Channel.raw_senders`: who sent a stored mail, read from its
    first SENDERS_HEAD bytes; None (read it whole) when they were cut before the header
    ended."""
    head = bytes(row.payload)
    if partial and b"\r\n\r\n" not in head and b"\n\n" not in head:
        return None
    return mail_senders(str((row.envelope or {}).get("from", "")), head)
