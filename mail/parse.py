"""MIME in the wild → InboundMessage.

Parses with the `compat32` policy into `EmailMessage` objects and decodes what we read
ourselves (RFC 2047 headers with `email.header`, bodies from their transfer encoding):
`policy.default` re-parses every header through its header registry on every access,
which made parsing the largest cost of an inbound mail (see bench/smtp_inbound.py).
Mail with wrong or missing charsets is decoded by trying the declared charset, then
UTF-8, then the Polish legacy charsets (Windows-1250, ISO-8859-2), never failing.
HTML-only mail is turned into text. The MIME tree is walked here (`_Walk`) rather than
with `get_body()` / `iter_attachments()`, which need `policy.default` headers; nothing a
sender can put in a MIME tree makes these functions raise (tests/test_mail_shapes.py).
No I/O here.
"""

from __future__ import annotations

import email
import mimetypes
import re
import unicodedata
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from html.parser import HTMLParser

from handlers.addresses import normalise_email
from handlers.message import Attachment, InboundMessage
from handlers.text import clean_line, mime_type_or_default

_FALLBACK_CHARSETS = ("utf-8", "cp1250", "iso-8859-2")
_MSGID = re.compile(r"<[^<>\s]+>")
_BODY_TYPES = ("text/plain", "text/html")
_FORWARDED = ("message/rfc822", "message/global")
_SIGNATURES = {"application/pgp-signature", "application/pkcs7-signature",
               "application/x-pkcs7-signature"}
#: nesting deeper than this is no mail program's; the SMTP server already refuses more
#: than 100 multiparts (mail/server.py), this also bounds nested forwarded messages
_MAX_DEPTH = 60
#: extensions for types Python's table lacks or answers oddly
_EXTENSIONS = {
    "text/plain": ".txt", "text/calendar": ".ics", "image/jpeg": ".jpg",
    "application/pgp-signature": ".asc", "application/pgp-encrypted": ".asc",
    "application/octet-stream": ".bin", "message/rfc822": ".eml", "message/global": ".eml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.oasis.opendocument.text": ".odt",
}
_MIME_TYPES = mimetypes.MimeTypes(filenames=())


def parse_bytes(raw: bytes) -> EmailMessage:
    """The compat32 tree of a raw mail. Forwarded mail nested deeper than Python's
    recursion limit (the multipart count at SMTP time does not see `message/rfc822`)
    makes the stdlib parser recurse too far: then only the headers are parsed and the
    body is one part the walk keeps as a file."""
    # typeshed ties `_class` to the policy's own message type, but the parser builds
    # `_class` whatever the policy (the policy's factory is used only without `_class`):
    # so these two ignores are for typeshed's stubs, not for this code.
    try:
        return email.message_from_bytes(raw, _class=EmailMessage, policy=policy.compat32)  # type: ignore[arg-type]
    except RecursionError:
        return BytesParser(_class=EmailMessage, policy=policy.compat32).parsebytes(  # type: ignore[return-value]
            raw, headersonly=True)


def header(msg: Message, name: str) -> str:
    """A header's text with RFC 2047 encoded words decoded; raw 8-bit text (older
    programs) decoded as UTF-8 or Windows-1250; never raises."""
    value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if value is None:
        return ""
    text = _eight_bit(str(value))
    if "=?" not in text:
        return text
    # RFC 2047 section 6.2: whitespace between adjacent encoded words is dropped, which
    # decode_header does; its chunks are then decoded with our charset fallbacks
    return _decode_words(text)


def _eight_bit(text: str) -> str:
    """Header text parsed from raw 8-bit bytes (held as surrogate escapes) decoded as
    UTF-8, else the Polish legacy charsets, as bodies are (`_decode`)."""
    if text.isascii():
        return text
    try:
        return _decode(text.encode("ascii", "surrogateescape"), None)
    except UnicodeError:  # real characters, not escapes: already text
        return text


class _TextFromHtml(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # markup the stdlib parser gives up on
        parser.parts.append(re.sub(r"<[^>]*>", " ", html))
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


class _Walk:
    """One pass over a parsed MIME tree: the text a clerk reads, and the files.

    Written for compat32 objects (the stdlib's `get_body()` / `iter_attachments()` need
    `policy.default` header objects and raise on the first `Content-Disposition`,
    issue #18). The rules, in the order a part meets them:

    - `multipart/alternative`: the first version with plain text gives the text, else the
      first with any text (HTML converted); files found in any version are kept (macOS
      Mail puts the attachment inside the HTML version, Outlook its inline images).
    - `multipart/signed` (RFC 1847): the first part is the mail; the detached signature
      is not shown as a file, because the clerk cannot check it apart from the signed
      bytes and `signature.asc` beside every mail would only be noise; the raw mail,
      signature included, is kept as received (`raw_inbound`).
    - `multipart/encrypted` (RFC 3156): the `Version: 1` control part is dropped, the
      encrypted data kept as a file.
    - any other multipart (mixed, related, report, unknown): every part in order.
    - `message/rfc822` (and `message/global`): a forwarded mail. Its text is quoted into
      the body under its From, Date and Subject and its files join the case's files,
      whatever its disposition: the clerk reads the case, not a nested `.eml`.
    - a leaf is body text when it is `text/plain` or `text/html`, has no file name, and is
      not marked `attachment` (or any disposition RFC 2183 does not define). Every such
      leaf is kept, in order: Apple Mail writes text, an inline photo, then more text.
    - everything else is a file: inline images, `text/calendar`, a `.txt` attached.
    """

    def __init__(self) -> None:
        self.files: list[Attachment] = []

    def part(self, part: Message, depth: int) -> list[tuple[bool, str]]:
        """The text segments of `part` as (is plain text, text); files go to `self.files`."""
        if depth > _MAX_DEPTH:
            self._file(part, _raw_bytes(part))  # beyond any real mail: kept, not walked
            return []
        ctype = content_type(part)
        # get_payload() without decode=True decodes 8-bit text with the declared charset,
        # which raises for some (`undefined`, an RFC 2231 tuple): only lists are read so
        payload = part.get_payload() if part.is_multipart() else None
        if ctype.startswith("multipart/") and isinstance(payload, list):
            return self._multipart(ctype, part, payload, depth)
        if ctype.startswith("message/") and isinstance(payload, list):
            if ctype in _FORWARDED:
                return [segment for inner in payload if isinstance(inner, Message)
                        for segment in self._forwarded(inner, depth)]
            self._file(part, b"".join(_raw_bytes(p) for p in payload if isinstance(p, Message)))
            return []
        data = _payload_bytes(part)
        if ctype.startswith("multipart/"):
            ctype = "text/plain"  # a multipart whose boundary never came: its text as it is
        if ctype in _BODY_TYPES and not _marked_file(part):
            text = _decode(data, _simple_param(part, "charset") or None)
            if ctype == "text/html":
                text = html_to_text(text)
            elif _simple_param(part, "format") == "flowed":
                text = _unflow(text, _simple_param(part, "delsp") == "yes")
            text = text.replace("\r\n", "\n").strip()
            return [(ctype == "text/plain", text)] if text else []
        self._file(part, data, ctype)
        return []

    def _multipart(self, ctype: str, part: Message, children: list, depth: int
                   ) -> list[tuple[bool, str]]:
        parts = [child for child in children if isinstance(child, Message)]
        if ctype == "multipart/alternative":
            versions = [self.part(child, depth + 1) for child in parts]
            chosen = next((v for v in versions if any(plain for plain, _ in v)), None)
            return chosen or next((v for v in versions if v), [])
        if ctype == "multipart/signed" and parts:
            protocol = _simple_param(part, "protocol")
            parts = parts[:1] + [p for p in parts[1:]
                                 if content_type(p) not in _SIGNATURES | {protocol}]
        elif ctype == "multipart/encrypted":
            parts = [p for p in parts if content_type(p) != "application/pgp-encrypted"]
        return [segment for child in parts for segment in self.part(child, depth + 1)]

    def _forwarded(self, inner: Message, depth: int) -> list[tuple[bool, str]]:
        lines = ["---------- Przekazana wiadomość / Forwarded message ----------"]
        for label, name in (("Od / From", "From"), ("Data / Date", "Date"),
                            ("Temat / Subject", "Subject")):
            value = " ".join(header(inner, name).split())
            if value:
                lines.append(f"{label}: {value}")
        return [(True, "\n".join(lines))] + self.part(inner, depth + 1)

    def _file(self, part: Message, data: bytes, ctype: str | None = None) -> None:
        ctype = ctype or content_type(part)
        name = filename(part) or f"załącznik-{len(self.files) + 1}{extension(ctype)}"
        self.files.append(Attachment(filename=name, content_type=ctype, data=data))


def _marked_file(part: Message) -> bool:
    """A file by its headers: a file name, or a disposition other than `inline`."""
    disposition = str(part.get("Content-Disposition") or "").partition(";")[0].strip().lower()
    return disposition not in ("", "inline") or bool(filename(part))


def _simple_param(part: Message, name: str) -> str:
    """A Content-Type parameter as lower-case ASCII text ("" if absent or odd)."""
    try:
        value = part.get_param(name)
    except (ValueError, TypeError, LookupError, UnicodeError):
        return ""
    if isinstance(value, tuple):  # RFC 2231 form of a parameter that needs none
        value = value[2]
    value = str(value or "").strip().lower()
    return value if value.isascii() else ""


def _payload_bytes(part: Message) -> bytes:
    """The decoded content. The stdlib returns what it cannot decode (unknown transfer
    encodings, broken uuencode) as it came, and repairs broken base64 as far as it can."""
    try:
        data = part.get_payload(decode=True)
    except (ValueError, TypeError, LookupError, UnicodeError):
        data = None
    return data if isinstance(data, bytes) else b""


def _raw_bytes(part: Message) -> bytes:
    """A part as bytes, best effort: only for parts kept whole (beyond the depth bound, a
    `message/*` that is no forwarded mail), where losing them beats failing the mail."""
    try:
        return part.as_bytes()
    except Exception:  # noqa: BLE001 - the generator's errors on hostile trees are many
        return b""


def _decode(data: bytes, declared: str | None) -> str:
    """Bytes as text, whatever the charset claims: the declared one, then UTF-8, then the
    Polish legacy charsets; never fails."""
    if declared in ("us-ascii", "ascii"):
        declared = None  # the default when none is given; 8-bit data says otherwise
    for charset in ((declared,) if declared else ()) + _FALLBACK_CHARSETS:
        try:
            return data.decode(charset)
        # an odd charset name can be a codec that is no text codec, or one that always
        # fails (`undefined`): UnicodeError and LookupError between them
        except (LookupError, UnicodeError, ValueError, TypeError):
            continue
    return data.decode("latin-1")


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next line."""
    out: list[str] = []
    current = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            current += line[:-1] if delsp else line
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return "\n".join(out)


def content_type(part: Message) -> str:
    """`type/subtype`, lower-case, or `application/octet-stream` when the header is not a
    plain token pair (a CR/LF or NUL in it would break every later use)."""
    return mime_type_or_default(part.get_content_type())


def filename(part: Message) -> str:
    """A part's file name: RFC 2231 (`filename*=`, continuations, any charset), RFC 2047
    words inside the quotes (Outlook, Gmail), raw 8-bit UTF-8 or Windows-1250; the
    `name=` of `Content-Type` when `filename` is absent. Only the last path component,
    NFC (macOS writes decomposed letters), without control characters; "" if none."""
    for header_name, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = _param(part, header_name, param)
        if value:
            name = re.split(r"[/\\]", value)[-1]
            name = unicodedata.normalize("NFC", clean_line(name)).strip()
            if name:
                return name[:255]
    return ""


def _param(part: Message, header_name: str, param: str) -> str:
    raw = next((str(v) for k, v in part.raw_items() if k.lower() == header_name), None)
    if raw is None:
        return ""
    if not raw.isascii():  # raw 8-bit in the header: decode it before reading parameters
        carrier = Message()
        carrier[header_name] = _eight_bit(raw)
        part = carrier
    try:
        value = part.get_param(param, None, header_name)
    except (ValueError, TypeError, LookupError, UnicodeError):
        return ""
    if isinstance(value, tuple):  # RFC 2231: (charset, language, percent-decoded text)
        charset, _, text = value
        try:
            data = text.encode("raw-unicode-escape")
        except UnicodeError:
            return text
        return _decode(data, (charset or "").lower() or None)
    if not value:
        return ""
    if "=?" in value:
        return _decode_words(value)
    return value


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; the text as it is when they are broken."""
    try:
        parts = decode_header(value)
        return "".join(_decode(chunk, charset) if isinstance(chunk, bytes) else chunk
                       for chunk, charset in parts)
    except (UnicodeError, LookupError, ValueError, HeaderParseError, AssertionError):
        return value


def extension(ctype: str) -> str:
    """A file extension for a content type, from Python's own table (not the host's
    /etc/mime.types, so the name is the same on every machine)."""
    return _EXTENSIONS.get(ctype) or _MIME_TYPES.guess_extension(ctype) or ".bin"


def _content(msg: Message) -> tuple[str, list[Attachment]]:
    walk = _Walk()
    segments = walk.part(msg, 0)
    return "\n\n".join(text for _, text in segments), walk.files


def body_text(msg: Message) -> str:
    """The text a clerk reads (see `_Walk` for which parts it is made of)."""
    return _content(msg)[0]


def attachments(msg: Message) -> list[Attachment]:
    """Every part that is a file, named (see `filename`, `extension`)."""
    return _content(msg)[1]


def message_ids(value: str | None) -> list[str]:
    return _MSGID.findall(str(value or ""))


def to_inbound(msg: Message, envelope_from: str, mailbox: str, inbound_id: int = 0
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
    text, files = _content(msg)
    return InboundMessage(
        channel="email",
        address=address.strip().lower(),
        display_name=name,
        text=text,
        subject=subject,
        mailbox=mailbox,
        message_id=next(iter(message_ids(msg.get("Message-ID"))), None),
        references=list(dict.fromkeys(refs)),
        attachments=files,
        language_hint="en" if str(msg.get("Content-Language", "")).startswith("en") else None,
        inbound_id=inbound_id,
    )
