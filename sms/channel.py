"""SMS as a channel (handlers/channels.py): registered by gateway/app.py when
`EMIL_SMS_TOKEN` is set, last in the default order — the channel of last resort, paid per
part.

Addresses are numbers in E.164 (`+48500100200`), normalised with `phonenumbers` (Google's
libphonenumber metadata); a number written without a country code is read as Polish
(`region`). Only numbers that can receive an SMS are taken: mobile, or fixed-or-mobile
where the plan cannot tell.

Text: `<template>.sms.j2` where a message has its own short form; otherwise the documented
fallback, the Telegram template with its HTML taken out (a link keeps its address after
its words, entities are decoded). The text is then capped at `max_parts` parts
(sms/encoding.py); a cut text ends with the notice's `link` when its context has one, so
the reader can open the rest.

Inbound (sms/callbacks.py, sms/inbound.py): the provider's callbacks, mounted under
`/hooks/sms/`, store incoming SMS for the inbox and apply delivery reports to the outbox.
An incoming SMS proves its number (sms/inbound.prove says why). `STOP` and `START` are
the channel's own commands (sms/optout.py), and the sender refuses a stopped number.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import jinja2
import phonenumbers
from phonenumbers import PhoneNumberType

from handlers.channels import Channel, Envelope, Outgoing
from handlers.context import ServiceContext
from handlers.netaddr import parse_networks
from handlers.render import Renderer
from sms import callbacks, optout
from sms.encoding import fit
from sms.inbound import prove, reader
from sms.smsapi import DEFAULT_URL, SmsApiSender

_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}


def normalise(address: str, region: str = "PL") -> str | None:
    """The number in E.164, or None if it is no number an SMS can reach."""
    try:
        number = phonenumbers.parse(address.strip()[:40], region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) \
            or phonenumbers.number_type(number) not in _SMS_TYPES:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class _Text(HTMLParser):
    """Telegram HTML → plain text: tags dropped, entities decoded, a link's address
    written after its words (unless the words are the address)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._links:
            href, start = self._links.pop()
            words = "".join(self.parts[start:]).strip()
            if href and href != words:
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain(html: str) -> str:
    """The text of Telegram HTML."""
    reader = _Text()
    reader.feed(html)
    reader.close()
    return "".join(reader.parts).strip()


def render(renderer: Renderer, template: str, lang: str, context: dict[str, Any]
           ) -> dict[str, str]:
    """{text} from `<template>.sms.j2`, else the Telegram template as plain text, and
    {link} where the context has a link to the full text."""
    try:
        text = renderer.text(template, ("sms",), lang, context)["text"]
    except jinja2.TemplateNotFound:
        text = plain(renderer.telegram(template, lang, context)["text"])
    rendered = {"text": text}
    link = context.get("link")
    if isinstance(link, str) and link:
        rendered["link"] = link
    if context.get(optout.CONFIRMS_STOP):  # the one SMS a stopped number still gets
        rendered[optout.CONFIRMS_STOP] = "yes"
    return rendered


def channel(token: str, *, api_url: str = DEFAULT_URL, sender_name: str | None = None,
            rate: float = 10.0, max_parts: int = 3, region: str = "PL",
            callback_secret: str | None = None, callback_networks: str = "") -> Channel:
    """The SMS channel through SMSAPI.pl (sms/smsapi.py), `rate` messages a second,
    each at most `max_parts` parts long; its callbacks authenticated by
    `callback_secret` (and `callback_networks`, when given)."""

    def payload(ctx: ServiceContext, rendered: dict[str, str], envelope: Envelope
                ) -> dict[str, Any]:
        out: dict[str, Any] = {"text": fit(rendered["text"], max_parts,
                                           rendered.get("link") or None)}
        if rendered.get(optout.CONFIRMS_STOP):
            out[optout.CONFIRMS_STOP] = True
        return out

    def number(address: str) -> str | None:
        return normalise(address, region)

    return Channel(
        name="sms",
        read=reader(number),
        outgoing=lambda: Outgoing(optout.HonourOptOut(
            SmsApiSender(token, api_url, sender_name)), rate=rate),
        templates=("sms", "telegram"),
        render=render,
        payload=payload,
        normalise=number,
        prove=prove,
        callbacks=callbacks.routes(callback_secret, parse_networks(callback_networks)),
        commands={"stop": optout.stop, "start": optout.start},
    )
