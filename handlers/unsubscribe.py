"""One-click unsubscribe (RFC 8058): the signed token in `List-Unsubscribe`, and what it names.

A token names one person, one notice type and one channel, signed with the stored signing
secret like the acknowledgement links (handlers/announcements.py) but undated: RFC 8058
asks that the link keep working for as long as the mail may be read, and what it does —
turning one notice type off — is harmless to repeat and undone in `/ustawienia`.

This module knows no HTTP and no MIME: the fan-out asks it for the headers' values, the
HTTP route hands it the token, and the change itself goes through the one preference rule
(`handlers.people.unsubscribe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, URLSafeSerializer

from handlers.context import ServiceContext

#: RFC 8058 section 3.1: the POST body a mail client sends
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class OptOut:
    """What one unsubscribe link turns off."""

    person_id: int
    kind: str
    channel: str


def _serializer(ctx: ServiceContext) -> URLSafeSerializer:
    return _serializer_for(ctx.signing_secret)


@lru_cache(maxsize=4)
def _serializer_for(secret: str) -> URLSafeSerializer:
    """One per secret, not one per link (a broadcast signs one per recipient)."""
    return URLSafeSerializer(secret, salt="unsubscribe")


def token(ctx: ServiceContext, person_id: int, kind: str, channel: str) -> str:
    return _serializer(ctx).dumps([person_id, kind, channel])


def url(ctx: ServiceContext, person_id: int, kind: str, channel: str) -> str:
    return f"{ctx.base_url}/unsubscribe/{token(ctx, person_id, kind, channel)}"


def list_id(ctx: ServiceContext, kind: str) -> str:
    """RFC 2919: one list per notice type, named under our mail domain, so that a mail
    client's filter (and its unsubscribe button) tells grades from announcements."""
    return f"<{kind}.{ctx.mail_domain}>"


def read(ctx: ServiceContext, value: str) -> OptOut | None:
    """The opt-out a token names; None for a forged, damaged or malformed one."""
    try:
        loaded = _serializer(ctx).loads(value)
    except BadData:
        return None
    if (not isinstance(loaded, list) or len(loaded) != 3 or isinstance(loaded[0], bool)
            or not isinstance(loaded[0], int) or not all(isinstance(x, str) for x in loaded[1:])):
        return None
    return OptOut(person_id=loaded[0], kind=loaded[1], channel=loaded[2])
