"""How an SMS is encoded and how many parts it costs (pure; issue #19).

An SMS is charged per part, so the count must be the provider's, not a guess. The rules
(3GPP TS 23.038 section 6.2.1 "GSM 7 bit Default Alphabet" and 6.2.1.1 its extension
table; TS 23.040 for concatenation, whose User Data Header takes 6 octets of the 140):

- A text made only of the default alphabet goes in 7-bit septets: 160 in a single SMS,
  153 in each part of a concatenated one. A character of the extension table
  (form feed, ``^ { } \\ [ ~ ] |`` and ``€``) is an escape plus the character: two septets,
  and the pair is never split between two parts.
- Anything else — one Polish "ą" is enough — makes the whole text UCS-2, counted in
  UTF-16 code units: 70 in a single SMS, 67 in each part; a character outside the Basic
  Multilingual Plane (an emoji) is two units, and a surrogate pair is not split either.

"Bez polskich znaków" (`transliterate`) keeps a Polish text in the default alphabet,
which more than doubles what one part holds. `fit` caps a long message at a number of
parts and ends it with a link to the full text.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Count", "count", "fit", "transliterate"]

#: the 128 characters of the default alphabet (0x1B, the escape, is no character itself)
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: the extension table: each costs an escape septet and its own
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM_SINGLE, GSM_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

_POLISH = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")


@dataclass(frozen=True)
class Count:
    """A text as sent: `encoding` "gsm" or "ucs2", its length in septets or UTF-16 code
    units, and the number of parts it is sent (and charged) as."""

    encoding: str
    units: int
    parts: int


def is_gsm(text: str) -> bool:
    """Whether every character is in the default alphabet or its extension table."""
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def _widths(text: str) -> tuple[str, list[int]]:
    """The encoding and each character's width in it (septets or code units)."""
    if is_gsm(text):
        return "gsm", [2 if char in GSM_EXTENSION else 1 for char in text]
    return "ucs2", [2 if ord(char) > 0xFFFF else 1 for char in text]


def count(text: str) -> Count:
    """Encoding, length and parts of `text`; an empty text is one (empty) part."""
    encoding, widths = _widths(text)
    single, per_part = (GSM_SINGLE, GSM_PART) if encoding == "gsm" else (UCS2_SINGLE, UCS2_PART)
    units = sum(widths)
    if units <= single:
        return Count(encoding, units, 1)
    # concatenated: fill each part, never splitting an escape pair or a surrogate pair
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts, used = parts + 1, 0
        used += width
    return Count(encoding, units, parts)


def transliterate(text: str) -> str:
    """Polish letters without their diacritics ("bez polskich znaków"): ą→a, ł→l, ż→z…"""
    return text.translate(_POLISH)


def fit(text: str, max_parts: int, link: str | None = None) -> str:
    """`text` as it is if it takes at most `max_parts` parts; otherwise as much of it as
    fits, cut between words, with an ellipsis and `link` (to the full text) at the end.
    The ellipsis is "…" only when the text is UCS-2 anyway: in the default alphabet it
    would make the whole message UCS-2, so there it is "..."."""
    if max_parts < 1:
        raise ValueError("max_parts is at least 1")
    text = text.strip()
    if count(text).parts <= max_parts:
        return text
    ellipsis = "..." if is_gsm(text) else "…"
    tail = f"{ellipsis}\n{link}" if link else ellipsis
    # the places a word ends, shortest first; the longest prefix that fits wins
    ends = [i for i in range(1, len(text)) if text[i].isspace() and not text[i - 1].isspace()]
    low, high, best = 0, len(ends) - 1, ""
    while low <= high:  # parts grow with the prefix: binary search over word ends
        middle = (low + high) // 2
        candidate = text[:ends[middle]].rstrip() + tail
        if count(candidate).parts <= max_parts:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    # not even the first word fits beside the link: the link alone
    return best or tail.lstrip(".…\n") or ellipsis
