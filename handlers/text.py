"""Text from outside, made safe to store and to show: one place for every channel.

Every way text enters — an `InboundMessage` (mail, the bot, the residents' page), a JSON
body (the API, the hooks, Telegram updates), a console or page form, a CSV import — passes
its strings through :func:`clean` (issue #18, fault 9):

- NUL is refused by PostgreSQL in a text column (`invalid byte sequence for encoding
  "UTF8": 0x00`): a mail with NUL in its subject failed five times and was apologised for;
- other C0 and C1 controls (ESC, backspace, …) mean nothing in a letter to the office and
  can drive a terminal reading the logs;
- the explicit bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069)
  make a name or a file name read differently from what it is ("zdjęcie<RLO>fdp.exe" shows
  as "zdjęcieexe.pdf", Unicode TR#36 §2.1 and CVE-2021-42574). Right-to-left text needs
  none of them — the bidi algorithm orders Arabic or Hebrew by itself — so they are
  dropped; pages still isolate names (`<bdi>`) so that right-to-left names do not reorder
  what is around them;
- a lone surrogate (JSON may spell one, `"\\ud800"`) cannot be written as UTF-8: it
  becomes U+FFFD;
- line ends become `\\n`; a single-line field (:func:`clean_line`) has none at all.

The same module reads whole numbers from outside (:func:`whole_number`: `str.isdigit`
accepts '²' and '٣', which `int` refuses or reads as another number) and checks MIME
types (:func:`is_mime_type`).
"""

from __future__ import annotations

import re

#: C0 controls but TAB and LF, DEL, C1 controls, bidi embeddings/overrides/isolates,
#: lone surrogates; CR is handled with the line ends
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                       "\ud800-\udfff]")
_LINE_ENDS = re.compile("\r\n?")
#: what a single line may not hold besides the above
_LINE_BREAKS = re.compile("[\t\n\u2028\u2029]+")


def _replacement(found: re.Match[str]) -> str:
    return "\ufffd" if "\ud800" <= found.group() <= "\udfff" else ""


def clean(text: str) -> str:
    """`text` without control characters but TAB and newline, without bidi controls, with
    `\\n` line ends. Text with nothing to remove (nearly all) is returned as it is, after
    one scan."""
    if "\r" in text:
        text = _LINE_ENDS.sub("\n", text)
    if _UNWANTED.search(text) is None:
        return text
    return _UNWANTED.sub(_replacement, text)


def clean_line(text: str) -> str:
    """:func:`clean` for a single-line field (a name, a subject, a file name): line
    breaks and tabs become one space."""
    text = clean(text)
    return _LINE_BREAKS.sub(" ", text) if _LINE_BREAKS.search(text) else text


def clean_json(value: object) -> object:
    """Every string of a parsed JSON value cleaned (keys too), in place for containers."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = clean_json(item)
        return value
    if isinstance(value, dict):
        items = list(value.items())
        value.clear()
        for key, item in items:
            value[clean(key) if isinstance(key, str) else key] = clean_json(item)
        return value
    return value


#: JSON escapes of what :func:`clean` changes: a C0 control (CR, backspace and form feed
#: have short escapes too: `\\r`, `\\b`, `\\f`, found by Hypothesis), DEL, a C1 control, a
#: bidi control (`\\u202.`, `\\u206.`), a surrogate. A few harmless escapes match too
#: (`\\u2026`, an emoji's surrogate pair): those bodies are walked for nothing.
_JSON_ESCAPE = re.compile(rb"\\(?:u(?:00[0189]|007[fF]|20[26]|[dD][89a-fA-F])|[rbf])")
#: C1 and bidi controls written as UTF-8 (JSON forbids raw C0 controls in strings)
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
_BIDI_UTF8 = re.compile(rb"\xe2(?:\x80[\xaa-\xae]|\x81[\xa6-\xa9])")


def json_needs_cleaning(raw: bytes) -> bool:
    """Whether a JSON body may hold anything to clean, without parsing it: most bodies
    are passed over with a few C-speed scans, each led by one literal byte, instead of a
    walk over every string (a register's hook holds 40,000 records). Measured on a 7 MB
    body of 40,000 records with Polish quotes in each: ~0.1 s, a fifth of `json.loads`;
    an ASCII body without escapes: a few milliseconds."""
    if b"\x7f" in raw or (b"\\" in raw and _JSON_ESCAPE.search(raw) is not None):
        return True
    return not raw.isascii() and (_C1_UTF8.search(raw) is not None
                                  or _BIDI_UTF8.search(raw) is not None)


def whole_number(text: str | None, *, low: int = 0, high: int = 2**31 - 1) -> int | None:
    """`text` as a whole number in [low, high], or None. ASCII digits only: `'²'.isdigit()`
    is true and `int('²')` raises; `int('٣')` is 3. Every number read from a query, a path
    or a command word goes through here."""
    if not text or len(text) > 12 or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if low <= number <= high else None


#: RFC 6838 section 4.2: type and subtype names are restricted-name tokens
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_MIME_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")

DEFAULT_MIME_TYPE = "application/octet-stream"


def is_mime_type(value: str) -> bool:
    """Whether `value` is a bare media type, `type/subtype` (RFC 6838 section 4.2), with no
    parameters, spaces or line breaks (a CR/LF in one broke every mail copy of an
    announcement: issue #18, fault 11)."""
    return len(value) <= 127 and _MIME_TYPE.fullmatch(value) is not None


def mime_type_or_default(value: str | None) -> str:
    """A content type from outside, lower-cased, or `application/octet-stream` if it is
    not a bare media type (a browser's or a mail's file: keep it, as bytes)."""
    value = (value or "").strip()
    return value.lower() if is_mime_type(value) else DEFAULT_MIME_TYPE
