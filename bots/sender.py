"""Outbound Telegram through python-telegram-bot, mapping its errors to outbox outcomes.

Rate limits are the channel's (Telegram Bot API FAQ, "My bot is hitting limits"): about
30 messages per second overall and about one per second per chat. The dispatcher spaces
messages; here a `429` becomes :class:`RateLimited` with Telegram's exact `retry_after`.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bots.split import caption, split_html
from store.files import announcement_attachment
from store.models import Outbox
from store.outbox import AddressFailing, PermanentSendError, RateLimited, TransientSendError

#: Telegram's words (the Bot API's error descriptions) for a chat the bot can no longer
#: write to, whatever the message → the reason kept on the address (handlers/health.py).
#: Any other 403 is about the chat too; any other 400 is about the message (too long,
#: bad HTML) and fails only that message.
CHAT_GONE = (
    ("bot was blocked by the user", "blocked"),
    ("user is deactivated", "deactivated"),
    ("bot was kicked", "kicked"),
    ("bot is not a member", "kicked"),
    ("can't initiate conversation", "cant_initiate"),
    ("chat not found", "chat_not_found"),
)


def chat_gone(error: Forbidden | BadRequest) -> str | None:
    """Why the chat itself refuses the bot, or None when the refusal is the message's."""
    text = error.message.lower()
    for words, reason in CHAT_GONE:
        if words in text:
            return reason
    return "forbidden" if isinstance(error, Forbidden) else None


def build_bot(token: str, api_url: str, pool_size: int = 64) -> Bot:
    """A Bot talking to `api_url` (Telegram, a self-hosted Bot API, or a test double).

    PTB's default connection pool is tiny; the outbox sends many messages concurrently.
    """
    base = api_url.rstrip("/")
    request = HTTPXRequest(connection_pool_size=pool_size, read_timeout=15, write_timeout=15,
                           connect_timeout=10, pool_timeout=10)
    return Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request,
               get_updates_request=HTTPXRequest(read_timeout=60, connection_pool_size=2))


def keyboard(buttons: list[list[list[str]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in buttons]
    )


class TelegramSender:
    channel = "telegram"

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, row: Outbox) -> None:
        payload = row.payload
        if payload.get("attachment_of"):
            shared = await announcement_attachment(payload["attachment_of"])
            if shared:
                payload = {**payload, "document": shared}
        try:
            if payload.get("answer_callback"):
                await self.bot.answer_callback_query(payload["answer_callback"],
                                                     text=payload.get("text") or None)
            elif payload.get("document"):
                doc = payload["document"]
                await self.bot.send_document(
                    row.recipient, InputFile(base64.b64decode(doc["data"]),
                                             filename=doc["filename"]),
                    caption=caption(payload.get("text") or ""), parse_mode=ParseMode.HTML,
                    reply_markup=keyboard(payload.get("buttons")),
                )
            else:
                # a long text goes as several messages, the buttons on the last
                parts = split_html(payload["text"])
                for n, part in enumerate(parts):
                    await self.bot.send_message(
                        row.recipient, part, parse_mode=ParseMode.HTML,
                        reply_markup=keyboard(payload.get("buttons")) if n == len(parts) - 1
                        else None,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
        except RetryAfter as error:
            after = error.retry_after
            seconds = after.total_seconds() if isinstance(after, timedelta) else float(after)
            raise RateLimited(seconds) from error
        except (Forbidden, BadRequest) as error:
            detail = f"{type(error).__name__}: {error.message}"
            reason = chat_gone(error)
            if reason is not None:
                raise AddressFailing(reason, detail) from error
            raise PermanentSendError(detail) from error
        except NetworkError as error:  # includes TimedOut and 5xx answers
            raise TransientSendError(f"{type(error).__name__}: {error.message}") from error
        except TelegramError as error:
            raise TransientSendError(f"{type(error).__name__}: {error.message}") from error
