"""Telegram updates → InboundMessage, and storing updates before they are acknowledged.

Parsing uses python-telegram-bot's own `Update.de_json`, so the wire format is PTB's
business; we only pick the fields the gateway needs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from telegram import Bot, Update

from handlers.message import InboundMessage
from store.models import RawInbound


def to_inbound(data: dict[str, Any], bot: Bot | None, inbound_id: int = 0) -> InboundMessage | None:
    """One update as the gateway's message type; None for updates we do not act on."""
    update = Update.de_json(data, bot)
    if update.callback_query is not None:
        query = update.callback_query
        chat = query.message.chat.id if query.message else query.from_user.id
        private = query.message is None or query.message.chat.type == "private"
        return InboundMessage(
            channel="telegram", address=str(chat), callback=query.data or "", private=private,
            callback_id=query.id, inbound_id=inbound_id,
            language_hint=_lang(query.from_user.language_code),
            display_name=query.from_user.full_name,
        )
    message = update.effective_message
    if message is None or update.effective_chat is None:
        return None
    text = message.text or message.caption or ""
    command, args = None, []
    entities = message.entities or ()
    if entities and entities[0].type == "bot_command" and entities[0].offset == 0:
        word = text[: entities[0].length]
        command = word[1:].split("@", 1)[0].lower()
        args = text[entities[0].length:].split()
    user = message.from_user
    return InboundMessage(
        channel="telegram",
        address=str(update.effective_chat.id),
        private=update.effective_chat.type == "private",
        text=text if command is None else " ".join(args),
        command=command,
        args=args,
        message_id=str(message.message_id),
        inbound_id=inbound_id,
        display_name=user.full_name if user else "",
        language_hint=_lang(user.language_code if user else None),
    )


def _lang(code: str | None) -> str | None:
    return "en" if code and code.startswith("en") else None


def raw_update(data: dict[str, Any], now: datetime) -> RawInbound:
    return RawInbound(
        channel="telegram",
        external_id=str(data["update_id"]),
        payload=json.dumps(data, ensure_ascii=False).encode(),
        received_at=now,
    )


async def store_updates(updates: list[dict[str, Any]], now: datetime) -> None:
    """Persist updates, ignoring ones already stored (Telegram re-sends until acked)."""
    if updates:
        await RawInbound.bulk_create([raw_update(u, now) for u in updates], ignore_conflicts=True)
