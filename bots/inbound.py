"""Telegram updates → InboundMessage, and storing updates before they are acknowledged.

Parsing uses python-telegram-bot's own `Update.de_json`, so the wire format is PTB's
business; we only pick the fields the gateway needs.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from telegram import Bot, Update
from telegram.error import TelegramError

from handlers.message import Attachment, InboundMessage
from handlers.text import clean_line
from store.models import RawInbound

log = logging.getLogger(__name__)


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
    replied = message.reply_to_message
    return InboundMessage(
        replying_to=(replied.text or replied.caption or "") if replied else "",
        remote_files=files_of(data),
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


def files_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The photo (its largest size) and the document of an update, as Telegram describes
    them: `file_id`, a name, the declared size. The inbox fetches them (`getFile`)."""
    message = data.get("message") or {}
    found = []
    document = message.get("document")
    if isinstance(document, dict) and document.get("file_id"):
        found.append({"file_id": document["file_id"],
                      "name": str(document.get("file_name") or "dokument")[:255],
                      "size": int(document.get("file_size") or 0),
                      "type": str(document.get("mime_type") or "application/octet-stream")})
    photos = message.get("photo")
    if isinstance(photos, list) and photos:
        largest = max((p for p in photos if isinstance(p, dict)),
                      key=lambda p: int(p.get("file_size") or 0), default=None)
        if largest and largest.get("file_id"):
            found.append({"file_id": largest["file_id"], "name": "zdjecie.jpg",
                          "size": int(largest.get("file_size") or 0), "type": "image/jpeg"})
    return found


def _lang(code: str | None) -> str | None:
    return "en" if code and code.startswith("en") else None


def read_stored(row: RawInbound, ctx: Any, bot: Bot | None
                ) -> tuple[InboundMessage | None, str]:
    """A stored update → the gateway's message, or None and why it gets no answer (the
    Telegram side of the inbox's one function per channel; `mail/inbound.py` the other)."""
    msg = to_inbound(json.loads(bytes(row.payload)), bot, row.id)
    return msg, "" if msg else "update without a message"


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


async def fetch_attachments(bot: Bot, files: list[dict[str, Any]], max_size: int
                            ) -> tuple[list[Attachment], list[tuple[str, int]]]:
    """Download a message's photo or document (`getFile`, then the file) if it is not
    larger than `max_size`; what is larger or cannot be fetched is returned by name and
    size, to be listed with the case and told to the resident, never silently dropped."""
    kept: list[Attachment] = []
    refused: list[tuple[str, int]] = []
    for info in files:
        name = clean_line(str(info["name"]))  # a name from outside (handlers/text.py)
        if info["size"] > max_size:
            refused.append((name, info["size"]))
            continue
        try:
            remote = await bot.get_file(info["file_id"])
            if (remote.file_size or 0) > max_size:
                refused.append((name, remote.file_size or 0))
                continue
            content = bytes(await remote.download_as_bytearray())
        except TelegramError:
            log.warning("could not fetch file %s", info["file_id"][:40], exc_info=True)
            refused.append((name, info["size"]))
            continue
        if len(content) > max_size:
            refused.append((name, len(content)))
            continue
        kept.append(Attachment(filename=name, content_type=info["type"], data=content))
    return kept, refused
