"""Files the gateway hands out (a case's attachments, a person's RODO export): one way to
answer with one, so that none is kept by a browser or a proxy, sniffed into a page, or
opened in place (issue #18, fault 13).
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from handlers.text import clean_line

#: RFC 8187 section 3.2.1 attr-char, beyond letters and digits (left unencoded)
_ATTR_CHARS = "!#$&+-.^_`|~"


def content_disposition(filename: str, fallback: str = "plik") -> str:
    """`attachment` with the name twice (RFC 6266 section 4.3): `filename*` in UTF-8
    (RFC 8187) for every browser of the last decade, and a plain ASCII `filename` of
    letters, digits and `._-` for the rest — no quote, backslash, control or bidi
    character can reach the header either way."""
    name = clean_line(filename).strip()[:200]
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_"
                         for c in name)[:120].strip("._") or fallback
    value = f'attachment; filename="{ascii_name}"'
    if name and name != ascii_name:
        value += f"; filename*=UTF-8''{quote(name, safe=_ATTR_CHARS)}"
    return value


def file_response(data: bytes | str, filename: str, *,
                  content_type: str = "application/octet-stream",
                  charset: str | None = None) -> web.Response:
    """A download: saved, never shown in place (`Content-Disposition: attachment`,
    `application/octet-stream` unless the caller knows better), never sniffed into HTML
    (`nosniff`), never kept by a cache (`no-store`: it may be a resident's document or a
    person's data, and a shared computer's cache outlives the session), and inert if a
    browser opens it after all (CSP `default-src 'none'`)."""
    headers = {"Content-Disposition": content_disposition(filename),
               "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
               "Content-Security-Policy": "default-src 'none'"}
    if isinstance(data, str):
        return web.Response(text=data, content_type=content_type, charset=charset or "utf-8",
                            headers=headers)
    return web.Response(body=data, content_type=content_type, charset=charset, headers=headers)
