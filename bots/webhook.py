"""Telegram's webhook, the push twin of bots/poller.py: what an update pushed to us must
prove and look like before it is stored. The HTTP route in gateway/api.py reads the
request and calls these, like every other route; the rules are the bot's.

Telegram sends the secret given to `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`
(Bot API, "setWebhook": secret_token, 1–256 characters `A-Za-z0-9_-`).
"""

from __future__ import annotations

import hmac
from typing import Any

#: Telegram's updates are small; a photo is a file reference, not bytes
MAX_UPDATE_BYTES = 256 * 1024
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def authorise(mode: str, secret: str | None, given: str) -> None:
    """Only when the bot runs by webhook, and only with the secret we gave Telegram."""
    if mode != "webhook" or not secret:
        raise Refused(404, "not_found", "the webhook is off")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise Refused(401, "unauthorized", "bad secret token")


def checked_update(body: dict[str, Any]) -> dict[str, Any]:
    """An update has an integer `update_id` (its key in the store, so a repeat is one row)."""
    if not isinstance(body.get("update_id"), int) or isinstance(body.get("update_id"), bool):
        raise Refused(400, "missing_field", "'update_id' is required")
    return body
