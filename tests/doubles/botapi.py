"""A Telegram Bot API double: a small aiohttp app on loopback that python-telegram-bot
talks real HTTP to.

It records what was sent, can answer with scripted failures (429 with `retry_after`,
502, 403), can enforce Telegram's limits itself (overall messages per second and one per
second per chat, answering 429 when broken), and serves `getUpdates` from a queue.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 777000


@dataclass
class Sent:
    method: str
    chat_id: str
    text: str
    params: dict[str, Any]
    at: float


@dataclass
class BotApiDouble:
    username: str = "emilanowek_bot"
    sent: list[Sent] = field(default_factory=list)
    failures: deque = field(default_factory=deque)  # (status, description, retry_after|None)
    enforce_overall: float | None = None
    enforce_per_chat: float | None = None
    throttled: int = 0
    breaches: list = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    _message_id: int = 100
    _window: deque = field(default_factory=deque)
    _last_for_chat: dict[str, float] = field(default_factory=dict)
    new_message: asyncio.Event = field(default_factory=asyncio.Event)
    #: files a user "uploaded": file_id → bytes, served by getFile and /file/bot…/path
    files: dict[str, bytes] = field(default_factory=dict)

    def messages_to(self, chat_id: int | str) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == str(chat_id) and s.method != "answerCallbackQuery"]

    def texts_to(self, chat_id: int | str) -> list[str]:
        return [s.text for s in self.messages_to(chat_id)]

    def fail_next(self, status: int, description: str = "", retry_after: int | None = None) -> None:
        self.failures.append((status, description, retry_after))

    async def wait_for(self, count: int, timeout: float = 10.0, distinct: bool = False) -> None:
        """Until `count` messages (or messages to `count` distinct chats) have arrived."""
        deadline = time.monotonic() + timeout

        def arrived() -> int:
            return len({s.chat_id for s in self.sent}) if distinct else len(self.sent)

        while arrived() < count:
            self.new_message.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"only {arrived()} of {count} arrived")
            try:
                await asyncio.wait_for(self.new_message.wait(), remaining)
            except TimeoutError:
                pass

    # --- HTTP ------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        return app

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if file_id not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[file_id])

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return await request.json()
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if hasattr(value, "file"):
                params[key] = {"filename": value.filename, "data": value.file.read()}
                continue
            text = str(value)
            if key in ("reply_markup", "allowed_updates", "link_preview_options", "entities"):
                try:
                    params[key] = json.loads(text)
                    continue
                except json.JSONDecodeError:
                    pass
            params[key] = text
        return params

    def _error(self, status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    def _ok(self, result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        if method == "getMe":
            return self._ok({"id": BOT_ID, "is_bot": True, "first_name": "e-Milanówek",
                             "username": self.username, "can_join_groups": False,
                             "can_read_all_group_messages": False,
                             "supports_inline_queries": False})
        if method in ("deleteWebhook", "setWebhook"):
            self.webhook = params if method == "setWebhook" else {}
            return self._ok(True)
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "getFile":
            file_id = str(params.get("file_id"))
            if file_id not in self.files:
                return self._error(400, "Bad Request: invalid file_id")
            return self._ok({"file_id": file_id, "file_unique_id": f"u{file_id}",
                             "file_size": len(self.files[file_id]),
                             "file_path": f"documents/{file_id}"})
        if method not in ("sendMessage", "sendDocument", "answerCallbackQuery"):
            return self._error(404, f"Not Found: method {method}")
        if self.failures:
            status, description, retry_after = self.failures.popleft()
            return self._error(status, description or "Bad Gateway", retry_after)
        refusal = telegram_refusal(method, params)
        if refusal:
            return self._error(400, refusal)
        chat_id = str(params.get("chat_id", ""))
        now = time.monotonic()
        if method != "answerCallbackQuery" and self._over_limit(chat_id, now):
            self.throttled += 1
            return self._error(429, "Too Many Requests: retry after 1", 1)
        self._message_id += 1
        text = str(params.get("text") or params.get("caption") or "")
        self.sent.append(Sent(method, chat_id, text, params, now))
        self.new_message.set()
        if method == "answerCallbackQuery":
            return self._ok(True)
        message: dict[str, Any] = {
            "message_id": self._message_id, "date": int(time.time()),
            "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 0, "type": "private"},
            "text": text,
        }
        return self._ok(message)

    def _over_limit(self, chat_id: str, now: float) -> bool:
        if self.enforce_per_chat is not None:
            last = self._last_for_chat.get(chat_id)
            # a little slack for clock jitter between two processes' timers
            if last is not None and now - last < (1.0 / self.enforce_per_chat) * 0.9:
                self.breaches.append(("chat", chat_id, now - last))
                return True
        if self.enforce_overall is not None:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.enforce_overall:
                self.breaches.append(("overall", chat_id, len(self._window)))
                return True
            self._window.append(now)
        self._last_for_chat[chat_id] = now
        return False

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 0.5)
        while True:
            pending = [u for u in self.updates if u["update_id"] >= offset]
            if pending or time.monotonic() >= deadline:
                return self._ok(pending)
            await asyncio.sleep(0.02)


#: the tags Telegram's HTML parse mode knows (Bot API, "Formatting options")
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                 "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji"}
_ENTITY_NAMES = {"lt", "gt", "amp", "quot"}


def telegram_refusal(method: str, params: dict[str, Any]) -> str | None:
    """What Telegram would answer with 400 for this message, as Telegram words it:
    over 4,096 UTF-16 units of text (1,024 of caption) after entity parsing, a tag it
    does not know, an unclosed or stray closing tag, an unknown named entity."""
    from bots.split import visible_units

    if method not in ("sendMessage", "sendDocument"):
        return None
    key, limit = ("text", 4096) if method == "sendMessage" else ("caption", 1024)
    text = str(params.get(key) or "")
    if method == "sendMessage" and not text.strip():
        return "Bad Request: message text is empty"
    if params.get("parse_mode") == "HTML":
        stack: list[str] = []
        for match in re.finditer(r"<(/?)\s*([A-Za-z][A-Za-z0-9-]*)[^<>]*>|&(#?[A-Za-z0-9]+);|[<>&]",
                                 text):
            closing, name, entity = match.group(1), match.group(2), match.group(3)
            if name is not None:
                if name.lower() not in TELEGRAM_TAGS:
                    return f"Bad Request: can't parse entities: unsupported start tag \"{name}\""
                if closing:
                    if not stack or stack.pop() != name.lower():
                        return f"Bad Request: can't parse entities: unexpected end tag \"{name}\""
                else:
                    stack.append(name.lower())
            elif entity is not None:
                if not entity.startswith("#") and entity not in _ENTITY_NAMES:
                    return f"Bad Request: can't parse entities: unsupported entity \"{entity}\""
            elif match.group(0) in "<&":
                return "Bad Request: can't parse entities: unexpected character"
        if stack:
            return f"Bad Request: can't parse entities: can't find end tag corresponding to \"{stack[-1]}\""
        length = visible_units(text)
    else:
        length = len(text.encode("utf-16-le")) // 2
    if length > limit:
        return ("Bad Request: message is too long" if key == "text"
                else "Bad Request: message caption is too long")
    return None


_next_update = [1000]


def message_update(chat_id: int, text: str, *, user_id: int | None = None,
                   language: str = "pl", update_id: int | None = None) -> dict[str, Any]:
    """A raw update JSON as Telegram sends it, with a bot_command entity for commands."""
    if update_id is None:
        _next_update[0] += 1
        update_id = _next_update[0]
    message: dict[str, Any] = {
        "message_id": update_id, "date": int(time.time()),
        "chat": {"id": chat_id, "type": "private", "first_name": "Jan"},
        "from": {"id": user_id or chat_id, "is_bot": False, "first_name": "Jan",
                 "language_code": language},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": len(text.split()[0])}]
    return {"update_id": update_id, "message": message}


def callback_update(chat_id: int, data: str, *, update_id: int | None = None) -> dict[str, Any]:
    if update_id is None:
        _next_update[0] += 1
        update_id = _next_update[0]
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}", "chat_instance": "1", "data": data,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Jan", "language_code": "pl"},
            "message": {"message_id": 5, "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"}, "text": "…"},
        },
    }
