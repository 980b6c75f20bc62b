"""Email addresses from outside, checked in time linear in their length.

A regex with nested or adjacent unbounded repeats (`[^@\\s]+\\.[^@\\s]+`) backtracks
quadratically on a long address without a match; one anonymous request then held the
event loop (SMTP, HTTP, the outbox) for tens of seconds (issue #11). Here the length is
checked first (at most 254 characters, RFC 5321 section 4.5.3.1.3 with RFC 3696 errata),
then the address is split once and each part checked character by character. Quoted
local parts are refused: nobody in the town needs one, and they are the forgers' tool.
"""

from __future__ import annotations

from handlers.limits import MAX_EMAIL

_LOCAL_SPECIALS = set("!#$%&'*+-/=?^_`{|}~.")
_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def normalise_email(value: str) -> str | None:
    """The address lower-cased, or None if it is not a plain `local@domain.tld`.
    A display form (`Jan <jan@x.pl>`) is accepted and reduced to its address."""
    text = value.strip()
    if len(text) > MAX_EMAIL + 200:
        return None
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1:-1].strip()
    if not 3 <= len(text) <= MAX_EMAIL:
        return None
    local, at, domain = text.lower().rpartition("@")
    if not at or not 1 <= len(local) <= 64 or not domain:
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    for char in local:
        if not (char.isascii() and char.isalnum()) and char not in _LOCAL_SPECIALS \
                and not (ord(char) > 127 and char.isprintable() and not char.isspace()):
            return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(1 <= len(label) <= 63 for label in labels):
        return None
    for label in labels:
        if label.startswith("-") or label.endswith("-") or not set(label) <= _LABEL_CHARS:
            return None
    return f"{local}@{domain}"
