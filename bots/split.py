"""Telegram HTML cut into messages Telegram accepts.

Telegram counts a message's length after entity parsing (tags do not count, `&amp;` is
one character) and in UTF-16 code units, at most 4,096 (Bot API, sendMessage; "Text
length" in the formatting options); a caption at most 1,024. A text cut in Python
characters at 4,095 could end inside a tag or an entity, or run over the limit with
emoji and other characters outside the BMP, and Telegram refused it whole. Here the text
is split into parts that each fit, at the best boundary available (a blank line, a line
end, a space, else anywhere between two characters), never inside a tag or an entity;
tags open at a cut are closed at its end and opened again at the start of the next part.
"""

from __future__ import annotations

import html
import re

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

# a tag, an entity, or a run of text: each alternative is linear (no nested repeats)
_TOKEN = re.compile(r"<[^<>]*>|&#?[A-Za-z0-9]{1,16};|[^<&]+|[<&]")
_TAG_NAME = re.compile(r"</?\s*([A-Za-z][A-Za-z0-9-]*)")


def units(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


def visible_units(telegram_html: str) -> int:
    """How long Telegram will find this text once it has parsed the entities."""
    total = 0
    for token in _TOKEN.findall(telegram_html):
        if token.startswith("<") and token.endswith(">") and len(token) > 1:
            continue
        total += units(html.unescape(token)) if token.startswith("&") else units(token)
    return total


def _fitting_prefix(text: str, room: int) -> int:
    """How many characters of `text` fit in `room` UTF-16 units (no surrogate split)."""
    used = count = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > room:
            break
        used += width
        count += 1
    return count


def _cut_at(text: str, fitting: int) -> int:
    """Where to cut `text`, at most `fitting` characters in: a paragraph, line or word
    boundary in the second half of what fits if there is one, else just `fitting`."""
    if fitting >= len(text):
        return fitting
    window = text[:fitting + 1]
    for boundary in ("\n\n", "\n", " "):
        at = window.rfind(boundary)
        if at > fitting // 2:
            return at + len(boundary)
    return max(1, fitting)


def split_html(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Parts of `text`, each at most `limit` visible UTF-16 units, tags balanced."""
    if visible_units(text) <= limit:
        return [text]
    parts: list[str] = []
    open_tags: list[tuple[str, str]] = []  # (name, the opening tag as written)
    current: list[str] = []
    used = 0
    fresh = 0  # opening tags at the end of `current` with nothing inside them yet

    def close_part() -> None:
        nonlocal current, used, fresh
        # tags just opened move whole to the next part (no empty entity is left behind)
        kept = current[: len(current) - fresh] if fresh else current
        still_open = open_tags[: len(open_tags) - fresh] if fresh else open_tags
        closing = "".join(f"</{name}>" for name, _ in reversed(still_open))
        body = "".join(kept).strip()
        if body:
            parts.append(body + closing)
        current = [tag for _, tag in open_tags]
        used = fresh = 0

    for token in _TOKEN.findall(text):
        if token.startswith("<") and token.endswith(">") and len(token) > 1:
            match = _TAG_NAME.match(token)
            name = match.group(1).lower() if match else ""
            if token.startswith("</"):
                for n in range(len(open_tags) - 1, -1, -1):
                    if open_tags[n][0] == name:
                        del open_tags[n]
                        break
            elif not token.endswith("/>"):
                open_tags.append((name, token))
                current.append(token)
                fresh += 1
                continue
            current.append(token)
            fresh = 0
            continue
        if token.startswith("&") and len(token) > 1:
            width = units(html.unescape(token))
            if used + width > limit:
                close_part()
            current.append(token)
            used += width
            fresh = 0
            continue
        while token:
            room = limit - used
            fitting = _fitting_prefix(token, room)
            if fitting >= len(token):
                current.append(token)
                used += units(token)
                fresh = 0
                break
            cut = _cut_at(token, fitting) if fitting else 0
            if cut == fitting and used > limit // 2 and units(token) <= limit:
                cut = 0  # no boundary inside a short run: cut before it instead
            if cut:
                current.append(token[:cut])
                fresh = 0
            token = token[cut:]
            close_part()
    close_part()
    return parts or [""]


def caption(text: str, limit: int = CAPTION_LIMIT) -> str | None:
    """A document's caption: the first part that fits, marked "…" if cut."""
    if not text:
        return None
    parts = split_html(text, limit - 1)
    return parts[0] if len(parts) == 1 else parts[0] + "…"
