"""SMS as a channel (handlers/channels.py): registered by gateway/app.py when
`EMIL_SMS_TOKEN` is set, last in the default order — the channel of last resort, paid per
part.

Addresses are numbers in E.164 (`+48500100200`), normalised with `phonenumbers` (Google's
libphonenumber metadata); a number written without a country code is read as Polish
(`region`). Only numbers that can receive an SMS are taken: mobile, or fixed-or-mobile
where the plan cannot tell.

Text: `<template>.sms.j2` where a message has its own short form; otherwise the documented
fallback, the Telegram template with its HTML taken out (a link keeps its address after
its words, entities are decoded). A person who chose "bez polskich znaków"
(`Person.plain_letters`, carried on the Envelope) gets it transliterated; a notice
whose context has a `link` (the whole text; an announcement's acknowledgement page — SMS
shows no buttons) ends with it. The text is then capped at `max_parts` parts
(sms/encoding.py), counted with all of that in; a cut text still ends with the link.

Money: the channel is `paid` (the fan-out uses it only where a person chose it, for an
urgent notice's last fallback, or for someone with no other channel), and `budget` wraps
the sender with the month's cap (sms/budget.py).

Inbound (sms/callbacks.py, sms/inbound.py): the provider's callbacks, mounted under
`/hooks/sms/`, store incoming SMS for the inbox and apply delivery reports to the outbox.
An incoming SMS proves its number (sms/inbound.prove says why). `STOP` and `START` are
the channel's own commands (sms/optout.py), and the sender refuses a stopped number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import jinja2
import phonenumbers
from phonenumbers import PhoneNumberType

from handlers.channels import Channel, Envelope, Outgoing, Sender
from handlers.context import ServiceContext
from handlers.netaddr import parse_networks
from handlers.render import Renderer
from handlers.text import clean_line
from handlers.unread import Glance
from sms import budget as sms_budget
from sms import callbacks, optout
from sms.encoding import GSM_BASIC, GSM_EXTENSION, fit, is_gsm, transliterate
from sms.inbound import prove, reader, sender_number
from sms.smsapi import DEFAULT_URL, SmsApiSender
from store.models import RawInbound

_SMS_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
#: seconds between two messages to one number (EMIL_SMS_NUMBER_INTERVAL): a notice and
#: a reply to the same phone arrive one after the other, not as a burst
NUMBER_INTERVAL = 1.0


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


#: typography the default alphabet lacks, written with what it has
_TYPOGRAPHY = str.maketrans({"„": '"', "”": '"', "“": '"', "‚": "'", "’": "'", "‘": "'",
                             "–": "-", "—": "-", "…": "...", "\u00a0": " "})
_SPACES = re.compile(r" {2,}")
_LEADING = re.compile(r"^ +", re.MULTILINE)


def gsm_only(text: str) -> str:
    """A text "bez polskich znaków" that really stays in the default alphabet (160
    characters a part): Polish letters transliterated, typographic quotes and dashes
    written plainly, and what is left outside the alphabet — an announcement's 📢 — left
    out; one emoji alone would make the whole message UCS-2 again."""
    text = transliterate(text).translate(_TYPOGRAPHY)
    if is_gsm(text):
        return text
    kept = "".join(c for c in text if c in GSM_BASIC or c in GSM_EXTENSION)
    return _LEADING.sub("", _SPACES.sub(" ", kept))  # the spaces an emoji stood between


def payload_text(rendered: dict[str, str], envelope: Envelope, max_parts: int) -> str:
    """The text as sent: "bez polskich znaków" for a person who asked for it, ending
    with the notice's link (the whole text; an announcement's acknowledgement) unless it
    is in the text already, and cut to `max_parts` — counted after all that went in."""
    text, link = rendered["text"], rendered.get("link") or None
    if envelope.plain_letters:
        text = gsm_only(text)
    if link and link not in text:
        text = f"{text.rstrip()}\n{link}"
    return fit(text, max_parts, link)


def raw_senders(row: RawInbound, partial: bool) -> set[str]:
    """`Channel.raw_senders` (RODO): the number that sent a stored incoming SMS — the
    provider's form kept as JSON (`sms_from`, `sms_to`, `sms_text`, `sms_date`, `MsgId`,
    sms/callbacks.py) — in E.164 as identities hold it, read as the inbox reads it."""
    try:
        sender = str(json.loads(bytes(row.payload)).get("sms_from") or "")
    except (ValueError, AttributeError):
        return set()
    number = sender_number(sender, normalise) if sender else None
    return {number} if number else set()


def glancer(number: Callable[[str], str | None]) -> Callable[[RawInbound, Any], Glance]:
    """`Channel.glance`: the number and the first words of an incoming SMS nobody could
    handle, from the provider's fields as stored; never raises."""

    def glance(row: RawInbound, ctx: Any) -> Glance:
        payload = bytes(row.payload)
        try:
            form = json.loads(payload)
            sender = sender_number(str(form.get("sms_from") or ""), number)
            text = clean_line(str(form.get("sms_text") or ""))[:300]
        except Exception:  # noqa: BLE001 - kept for a clerk, unanswered
            sender, text = None, ""
        return Glance(address=sender or "", subject=text, size=len(payload),
                      automatic=None if sender else "no number to answer")

    return glance


def channel(token: str, *, api_url: str = DEFAULT_URL, sender_name: str | None = None,
            rate: float = 10.0, max_parts: int = 3, region: str = "PL",
            budget: Callable[[Sender], Sender] = lambda sender: sender,
            number_interval: float | None = NUMBER_INTERVAL,
            callback_secret: str | None = None, callback_networks: str = "",
            part_price: Decimal | None = None, budget_parts: int | None = None) -> Channel:
    """The SMS channel through SMSAPI.pl (sms/smsapi.py), `rate` messages a second,
    each at most `max_parts` parts long, `number_interval` seconds apart to one number;
    `budget` wraps the sender (sms/budget.BudgetedSender keeps the month's cap), inside
    the opt-out check (a stopped number reserves nothing); its callbacks authenticated by
    `callback_secret` (and `callback_networks`, when given)."""

    def payload(ctx: ServiceContext, rendered: dict[str, str], envelope: Envelope
                ) -> dict[str, Any]:
        out: dict[str, Any] = {"text": payload_text(rendered, envelope, max_parts)}
        if rendered.get(optout.CONFIRMS_STOP):
            out[optout.CONFIRMS_STOP] = True
        return out

    def number(address: str) -> str | None:
        return normalise(address, region)

    async def estimate(ctx: ServiceContext, people: list[Any], sample: Any, *, urgent: bool,
                       lang: str, next_id: int) -> dict[str, Any]:
        return await sms_budget.estimate(ctx, people, sample, urgent=urgent, price=part_price,
                                         cap=budget_parts, lang=lang, next_id=next_id)

    return Channel(
        name="sms",
        read=reader(number),
        outgoing=lambda: Outgoing(optout.HonourOptOut(
            budget(SmsApiSender(token, api_url, sender_name))), rate=rate,
            chat_interval=number_interval),
        templates=("sms", "telegram"),
        render=render,
        payload=payload,
        normalise=number,
        prove=prove,
        callbacks=callbacks.routes(callback_secret, parse_networks(callback_networks)),
        commands={"stop": optout.stop, "start": optout.start},
        paid=True,
        raw_senders=raw_senders,
        glance=glancer(number),
        raw_file=("json", "application/json"),
        cases_by_text=True,  # a text that is no command and answers no case opens one
        estimate=estimate,
    )
