"""Markdown-ish announcement text, rendered safely for each channel.

`**bold**` and `_italic_`; everything else is escaped, so the result is valid Telegram
HTML and safe email HTML alike. The plain-text form drops the markers.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<!\w)_(.+?)_(?!\w)")


def markdownish(text: str) -> Markup:
    html = str(escape(text))
    html = _BOLD.sub(r"<b>\1</b>", html)
    return Markup(_ITALIC.sub(r"<i>\1</i>", html))


def plain_text(text: str) -> str:
    return _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))
