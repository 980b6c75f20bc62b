"""Incoming SMS → InboundMessage (issue #19, "two-way").

The provider's callback (sms/callbacks.py) stores each incoming SMS as a RawInbound row —
channel "sms", `external_id` the provider's message id, `payload` the callback's form as
JSON — and the inbox reads it here, like a mail or a Telegram update.

Words a person writes become commands only when the whole message is one of them, read
without case, Polish letters, punctuation or extra spaces ("Stop.", "STOP SMS", "wypisz
mnie"): a sentence that merely starts with "nie" is text, not an opt-out. The lists:

- STOP (SMS off for this number): `stop`, `stop sms`, `sms stop`, `stopsms`, `stop all`,
  `wypisz`, `wypisz mnie`, `wypisz sie`, `koniec`, `rezygnuje`, `rezygnacja`, `nie`,
  `unsubscribe`. STOP is what Polish operators and senders print under bulk SMS; the
  Polish words are the ones people answer with instead.
- START (on again): `start`, `start sms`, `sms start`, `wznow`, `zapisz`, `zapisz mnie`.
- STATUS: a message whose first word is `status` asks for a case's status
  (`STATUS UM-2026-000123`), answered by the general `status` route.

Everything else is free text for the router.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from handlers.context import ServiceContext
from handlers.message import InboundMessage
from sms.encoding import transliterate
from store.models import RawInbound

__all__ = ["STOP_WORDS", "START_WORDS", "prove", "reader", "sender_number", "words"]

#: a text that is only one of these turns SMS off. Not "nie" or "koniec" alone: a text is
#: also an answer to a clerk's question about a case ("Nie." to "Czy latarnia nadal nie
#: świeci?"), and taking it for STOP would lose the answer and the person's SMS alike
#: (review of #19); "nie chcę SMS", "koniec sms" say what they mean.
STOP_WORDS = frozenset({
    "stop", "stop sms", "sms stop", "stopsms", "stop all", "wypisz", "wypisz mnie",
    "wypisz sie", "koniec sms", "rezygnuje", "rezygnacja", "rezygnuje z sms",
    "nie chce sms", "nie chce smsow", "nie chce sms ow", "unsubscribe"})
START_WORDS = frozenset({"start", "start sms", "sms start", "wznow", "zapisz", "zapisz mnie"})

_NOT_WORD = re.compile(r"[\W_]+")
CASE_NUMBER = re.compile(r"\bUM-\d{4}-\d{6}\b", re.IGNORECASE)


def folded(text: str) -> str:
    """`text` as a keyword is compared: lower case, no Polish letters, words only."""
    return _NOT_WORD.sub(" ", transliterate(text.lower())).strip()


def words(text: str) -> tuple[str | None, list[str], str]:
    """(command, its arguments, text) of an SMS: `stop`, `start` or `status`, else None
    and the text as written."""
    whole = folded(text)
    if whole in STOP_WORDS:
        return "stop", [], ""
    if whole in START_WORDS:
        return "start", [], ""
    first, *rest = text.split(maxsplit=1) or [""]
    if folded(first) == "status" and (not rest or CASE_NUMBER.search(rest[0])):
        # "STATUS UM-2026-000123" (or "status" alone, answered with how to ask); a
        # sentence that begins with the word ("Status mojej sprawy…?") is text for the case
        args = rest[0].split() if rest else []
        return "status", args, " ".join(args)
    return None, [], text.strip()


def sender_number(raw: str, normalise: Callable[[str], str | None]) -> str | None:
    """The sender in E.164. SMSAPI writes international numbers without "+"
    (48500100200, as it reads ours: sms/smsapi.py), which a Polish reading would take
    for a national number; so digits longer than a national number get their "+"."""
    raw = raw.strip()
    if raw.isdigit() and len(raw) > 9 and not raw.startswith("0"):
        raw = f"+{raw}"
    return normalise(raw)


def reader(normalise: Callable[[str], str | None]
           ) -> Callable[[RawInbound, ServiceContext], tuple[InboundMessage | None, str]]:
    """The channel's `read`: a stored incoming SMS → the message, or None and why."""

    def read(row: RawInbound, ctx: ServiceContext) -> tuple[InboundMessage | None, str]:
        form: dict[str, Any] = json.loads(bytes(row.payload))
        address = sender_number(str(form.get("sms_from", "")), normalise)
        if address is None:  # an operator's own message, or a sender name, not a number
            return None, "the sender is no number an SMS can answer"
        command, args, text = words(str(form.get("sms_text", "")))
        return InboundMessage(channel="sms", address=address, text=text, command=command,
                              args=args, message_id=str(form.get("MsgId") or "") or None,
                              inbound_id=row.id), ""

    return read


async def prove(msg: InboundMessage) -> str | None:
    """An incoming SMS's number is proven. Why: the message reached us only through the
    provider's callback, which is authenticated (a secret in its URL, and optionally the
    provider's own networks: sms/callbacks.py), and the provider got it from the mobile
    network, which puts the sending SIM's number in it — a phone proves its number the way
    a Telegram update proves its chat. (A number can be forged on some international
    routes into a network; that is the operators' fight, and the same trust every bank's
    SMS code rests on.)"""
    return "sms"
