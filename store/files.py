"""Attachments that many outbox rows share (an announcement's file) are kept once, on the
announcement, and the rows only name it; senders fetch it here, cached per process."""

from __future__ import annotations

from typing import Any

from store.models import Announcement

_cache: dict[int, dict[str, Any] | None] = {}


async def announcement_attachment(announcement_id: int) -> dict[str, Any] | None:
    """{filename, content_type, data (base64)} or None."""
    if announcement_id not in _cache:
        if len(_cache) > 32:
            _cache.clear()
        found = await Announcement.get_or_none(id=announcement_id).values("attachment")
        _cache[announcement_id] = found["attachment"] if found else None
    return _cache[announcement_id]
