"""An SMSAPI.pl double: a small aiohttp app on loopback that sms/smsapi.py talks real
HTTP to (`POST /sms.do`, Bearer token, form fields, JSON answers — as sms/smsapi.py's
docstring describes the API).

It checks the token, records each message with the parts the provider would charge,
counted here on its own (160/153 septets in the GSM default alphabet with the extension
table's characters costing two, else 70/67 UTF-16 code units) rather than with
sms/encoding.py, and can answer scripted failures: an SMSAPI error code, or an HTTP status
(429 with Retry-After).

It also calls the gateway back as SMSAPI would (sms/callbacks.py's docstring), over real
HTTP to `callback` (the gateway's `…/hooks/sms/smsapi/<secret>`): delivery reports
(`report`, by GET unless told to POST, several as comma-separated lists) and incoming SMS
(`incoming`, a POSTed form). Each returns the gateway's (status, body); SMSAPI wants `OK`.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "sms-test-token"
#: SMSAPI's error for an `idx` already sent with `check_idx=1` (as remembered: sms/smsapi.py)
NOT_UNIQUE_IDX = 53

_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
           "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("\f^{}\\[~]|€")


def charged_parts(text: str) -> tuple[str, int]:
    """(encoding, parts) the way an SMS provider charges them."""
    if all(c in _GSM or c in _GSM_EXT for c in text):
        septets = sum(2 if c in _GSM_EXT else 1 for c in text)
        return "gsm", 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return "ucs2", 1 if units <= 70 else math.ceil(units / 67)


@dataclass
class Sms:
    to: str
    message: str
    sender: str | None
    idx: str | None
    encoding: str
    parts: int
    id: str


@dataclass
class SmsApiDouble:
    token: str = TOKEN
    sent: list[Sms] = field(default_factory=list)
    #: (http status, SMSAPI error code or None, message, Retry-After or None)
    failures: deque = field(default_factory=deque)
    requests: int = 0
    url: str = ""
    #: the gateway's callback base, `…/hooks/sms/smsapi/<secret>` (set by the test)
    callback: str = ""
    #: the number incoming SMS are sent to (the town's two-way number)
    number: str = "48799000111"
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def to(self, number: str) -> list[Sms]:
        """Messages to a number given in E.164 (the API takes it without "+")."""
        return [s for s in self.sent if s.to == number.removeprefix("+")]

    def fail_next(self, *, code: int | None = None, message: str = "", status: int = 200,
                  retry_after: int | None = None) -> None:
        self.failures.append((status, code, message, retry_after))

    def lose_answer_next(self) -> None:
        """Take the next message and then answer 502, as if the answer were lost on the
        way (a proxy's timeout): the message went, the sender cannot know it."""
        self.failures.append((502, "lost", "", None))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/sms.do", self._send)
        return app

    def _take(self, form: Any) -> Sms:
        """Record a message as sent, with the parts it is charged."""
        message = str(form.get("message", ""))
        encoding, parts = charged_parts(message)
        sms = Sms(to=str(form.get("to", "")), message=message, sender=form.get("from"),
                  idx=form.get("idx"), encoding=encoding, parts=parts,
                  id=f"SMS{len(self.sent) + 1:08d}")
        self.sent.append(sms)
        return sms

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": 101, "message": "Authorization failed"})
        form = await request.post()
        if self.failures and self.failures[0][1] == "lost":
            self.failures.popleft()
            self._take(form)
            return web.json_response({"error": 502, "message": "Bad gateway"}, status=502)
        if self.failures:
            status, code, message, retry_after = self.failures.popleft()
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            body: dict[str, Any] = ({"error": code, "message": message} if code is not None
                                    else {"error": status, "message": message or "error"})
            return web.json_response(body, status=status, headers=headers)
        to = str(form.get("to", ""))
        if not to.isdigit():
            return web.json_response({"error": 13, "message": "No correct phone numbers"})
        if form.get("format") != "json" or form.get("encoding") != "utf-8":
            return web.json_response({"error": 8, "message": "Error in request"})
        if form.get("check_idx") == "1" and any(s.idx == form.get("idx") for s in self.sent):
            return web.json_response({"error": NOT_UNIQUE_IDX, "message": "Not unique idx"})
        sms = self._take(form)
        parts = sms.parts
        return web.json_response({"count": 1, "list": [{
            "id": sms.id, "points": round(0.16 * parts, 2), "number": to, "status": "QUEUE",
            "error": None, "idx": sms.idx, "parts": parts}]})

    async def report(self, *reports: tuple[Sms, int | str], method: str = "GET"
                     ) -> tuple[int, str]:
        """Delivery reports of sent messages, (message, state) each, in one call."""
        fields = {"MsgId": ",".join(sms.id for sms, _ in reports),
                  "status": ",".join(str(status) for _, status in reports),
                  "idx": ",".join(sms.idx or "" for sms, _ in reports),
                  "donedate": ",".join("1796212800" for _ in reports),
                  "to": ",".join(sms.to for sms, _ in reports),
                  "from": ",".join(sms.sender or "" for sms, _ in reports),
                  "points": ",".join(str(round(0.16 * sms.parts, 2)) for sms, _ in reports),
                  "username": "milanowek"}
        if method == "GET":
            return await self.call("GET", f"{self.callback}/reports", params=fields)
        return await self.call("POST", f"{self.callback}/reports", data=fields)

    async def incoming(self, sender: str, text: str, *, msg_id: str | None = None
                       ) -> tuple[int, str]:
        """An SMS from `sender` (E.164) to the town's number; returns (status, body)."""
        return await self.call("POST", f"{self.callback}/incoming", data={
            "sms_to": self.number, "sms_from": sender.removeprefix("+"), "sms_text": text,
            "sms_date": "1796212800", "username": "milanowek",
            "MsgId": msg_id or f"IN{next(self._ids):08d}"})

    async def call(self, method: str, url: str, **kwargs: Any) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.request(
                method, url, **kwargs) as resp:
            return resp.status, await resp.text()
