"""Telegram as a channel (handlers/channels.py): registered by gateway/app.py.

Telegram proves a chat for us: an update's chat id is Telegram's word. Pacing is the
channel's (Telegram Bot API FAQ, "My bot is hitting limits"): about 30 messages per second
overall and about one per second per chat, set by `EMIL_TELEGRAM_RATE` and
`EMIL_TELEGRAM_CHAT_INTERVAL`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from telegram import Bot

from bots import inbound
from bots.sender import TelegramSender
from handlers.channels import Channel, Outgoing
from handlers.message import InboundMessage
from handlers.render import Renderer
from handlers.text import clean_line
from handlers.unread import Glance
from store.models import RawInbound

#: keys of a Telegram update under which a user or chat is named (core.telegram.org/bots/api)
_WHO = ("from", "chat", "user", "sender_chat", "forward_from", "forward_from_chat",
        "sender_user", "old_chat_member", "new_chat_member")


async def prove(msg: InboundMessage) -> str | None:
    """Every update is Telegram's word for its chat."""
    return "telegram"


def normalise(address: str) -> str | None:
    """A chat id: an integer (groups' are negative), stored as its decimal text."""
    try:
        return str(int(address.strip()))
    except ValueError:
        return None


def update_senders(update: Any) -> set[str]:
    """Every user and chat id a Telegram update names (sender, chat, forwarded-from,
    the member a change is about), as text like our Telegram addresses."""
    found: set[str] = set()
    stack = [update]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _WHO and isinstance(value, dict) and "id" in value:
                    found.add(str(value["id"]))
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def raw_senders(row: RawInbound, partial: bool) -> set[str]:
    """`Channel.raw_senders`: the users and chats a stored update names (RODO)."""
    try:
        return update_senders(json.loads(bytes(row.payload)))
    except ValueError:
        return set()


#: the keys of an update that carry a message (core.telegram.org/bots/api#update)
_MESSAGES = ("message", "edited_message", "channel_post", "edited_channel_post",
             "business_message")


def _part(data: dict[str, Any], key: str) -> dict[str, Any]:
    found = data.get(key)
    return found if isinstance(found, dict) else {}


def _glance(data: dict[str, Any], size: int) -> Glance:
    message = next((_part(data, key) for key in _MESSAGES if _part(data, key)), {})
    query = _part(data, "callback_query")
    message = message or _part(query, "message")
    chat = _part(message, "chat")
    user = next((u for u in (message.get("from"), query.get("from")) if isinstance(u, dict)),
                {})
    chat_id = normalise(str(chat.get("id") or user.get("id") or ""))
    private = chat.get("type", "private") == "private"
    text = message.get("text") or message.get("caption") or query.get("data") or ""
    automatic = ("no chat to answer" if chat_id is None
                 else "not a private chat" if not private
                 else "a bot" if user.get("is_bot") else None)
    language = str(user.get("language_code") or "")
    return Glance(address=chat_id or "", subject=clean_line(str(text))[:300], size=size,
                  automatic=automatic, language_hint="en" if language.startswith("en") else None)


def glance(row: RawInbound, ctx: Any) -> Glance:
    """`Channel.glance`: the chat, the first words and the language of an update nobody
    could handle, read from the stored JSON alone (whatever PTB makes of it); an answer
    goes to private chats only — a group's message is no request of a person to us.
    Never raises."""
    payload = bytes(row.payload)
    try:
        data = json.loads(payload)
        return _glance(data if isinstance(data, dict) else {}, len(payload))
    except Exception:  # noqa: BLE001 - not even JSON: kept for a clerk, unanswered
        return Glance(address="", subject="", size=len(payload), automatic="unreadable")


def render(renderer: Renderer, template: str, lang: str, context: dict[str, Any]
           ) -> dict[str, str]:
    """{text} in Telegram HTML from `<template>.telegram.j2`."""
    return renderer.telegram(template, lang, context)


def channel(bot: Callable[[], Bot | None], *, rate: float, chat_interval: float) -> Channel:
    """The Telegram channel. `bot` gives the bot once it is built (gateway/app.py's
    `bot_ctx`), None without a token: then nothing is sent by Telegram."""

    async def fetch(msg: InboundMessage, max_size: int) -> None:
        current = bot()
        if current is not None and msg.remote_files:
            msg.attachments, msg.too_large = await inbound.fetch_attachments(
                current, msg.remote_files, max_size)

    def outgoing() -> Outgoing | None:
        current = bot()
        if current is None:
            return None
        return Outgoing(TelegramSender(current), rate=rate, chat_interval=chat_interval)

    return Channel(
        name="telegram",
        read=lambda row, ctx: inbound.read_stored(row, ctx, bot()),
        outgoing=outgoing,
        templates=("telegram",),
        render=render,
        normalise=normalise,
        prove=prove,
        fetch=fetch,
        # a chat that writes to the bot has unblocked it (handlers/health.py)
        revived_by_message=True,
        raw_senders=raw_senders,
        glance=glance,
        raw_file=("json", "application/json"),
    )
