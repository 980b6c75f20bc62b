"""Polling transport: `getUpdates` in our own loop, each batch stored before the next call.

Telegram forgets updates once a later `offset` is requested, so the offset only moves
past a batch after that batch is committed: a crash re-fetches, storage deduplicates.
(We drive `Bot.get_updates` ourselves instead of PTB's `Updater`, which hands updates on
before they could be stored.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from telegram import Bot
from telegram.error import NetworkError, RetryAfter, TelegramError

from bots.inbound import store_updates

log = logging.getLogger(__name__)


async def poll_forever(
    bot: Bot, now: Callable[[], datetime], on_stored: Callable[[], None], timeout: int = 25
) -> None:
    offset: int | None = None
    await bot.delete_webhook(drop_pending_updates=False)
    while True:
        try:
            updates = await bot.get_updates(offset=offset, timeout=timeout,
                                            allowed_updates=["message", "callback_query"])
        except RetryAfter as error:
            await asyncio.sleep(_seconds(error.retry_after))
            continue
        except (NetworkError, TelegramError):
            log.warning("getUpdates failed; retrying", exc_info=True)
            await asyncio.sleep(2)
            continue
        if not updates:
            continue
        data = [u.to_dict() for u in updates]
        try:
            await store_updates(data, now())
        except Exception:  # keep the offset: Telegram sends the batch again
            log.exception("could not store updates; fetching them again")
            await asyncio.sleep(1)
            continue
        offset = max(u.update_id for u in updates) + 1
        on_stored()


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)
