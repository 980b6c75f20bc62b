"""SMSAPI.pl's HTTP API, called with aiohttp: the SMS lane's sender (issue #19).

Why SMSAPI.pl: a Polish provider that publishes its HTTP API and an official client,
`smsapi-client`; that client is synchronous, on `requests`, and would block the event loop
the whole gateway runs on, so this is our own small asynchronous client of the same API.
Another provider is one more module with the same interface: a class with `channel =
"sms"` and `async send(row)` raising store/outbox.py's error classes.

What this module takes from SMSAPI's published documentation (docs "Wysyłka SMS" of
https://www.smsapi.pl/docs; the documentation could not be reached from the machine this
was written on, so these facts are as remembered and as the issue's brief gives them, and
the test double in tests/doubles/smsapi.py speaks them — check them against the docs
before going live):

- `POST {base}/sms.do`, authorised by `Authorization: Bearer <OAuth token>`, with form
  fields `to` (the number in international form without "+", e.g. 48500100200),
  `message`, `from` (a sender name registered with SMSAPI), `format=json`,
  `encoding=utf-8` and `idx` (our own id, echoed in delivery reports: the outbox row's id),
  with `check_idx=1` (SMSAPI refuses an idx it has sent, error 53: a retried row is
  never sent twice).
- Success answers JSON `{"count": 1, "list": [{"id": …, "points": …, "parts": …, …}]}`;
  a refusal answers `{"error": <code>, "message": <text>}`. Codes: 11 message too long or
  empty, 13 no valid number, 14 wrong sender name (this message or number: permanent);
  101, 102, 105 authorisation refused, 103 no points left (the account: permanent for the
  row, so the notice goes by the person's next channel rather than waiting); 201 and
  other codes: the provider's own trouble, retried.

And from HTTP itself, not from SMSAPI: a `429` is a rate limit, waited out for its
`Retry-After` seconds (RFC 6585, RFC 9110 section 10.2.3); a 5xx or a broken connection is
retried with the outbox's backoff.

One connection per message: the Channel shape has no hook to close a pooled session when
a lane stops, and at the rate SMS is sent (`EMIL_SMS_RATE`, 10 a second by default) a
connection each costs little next to the SMS itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from store.models import Outbox
from store.outbox import PermanentSendError, RateLimited, TransientSendError

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.smsapi.pl"

#: SMSAPI's error codes that no retry of this row will cure
PERMANENT_CODES = frozenset({11, 13, 14, 101, 102, 103, 105})
#: the answer to a message whose `idx` SMSAPI has already sent, when asked to check
#: (`check_idx=1`): a retry after an answer that was lost (a timeout, a proxy's 502) is
#: then refused instead of sent and paid for twice — as remembered, like the rest
NOT_UNIQUE_IDX = 53
#: a 429 without Retry-After: wait this long
DEFAULT_RETRY_AFTER = 1.0
TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


class SmsApiSender:
    """Sends an outbox row's `payload["text"]` to `row.recipient` (E.164) through SMSAPI."""

    channel = "sms"

    def __init__(self, token: str, base_url: str = DEFAULT_URL, sender_name: str | None = None
                 ) -> None:
        self.token = token
        self.url = f"{base_url.rstrip('/')}/sms.do"
        self.sender_name = sender_name

    def form(self, row: Outbox) -> dict[str, str]:
        """The form fields of one message."""
        fields = {"to": row.recipient.removeprefix("+"), "message": row.payload["text"],
                  "format": "json", "encoding": "utf-8", "idx": str(row.id),
                  "check_idx": "1"}
        if self.sender_name:
            fields["from"] = self.sender_name
        return fields

    async def send(self, row: Outbox) -> None:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.post(
                    self.url, data=self.form(row),
                    headers={"Authorization": f"Bearer {self.token}"}) as resp:
                status, retry_after, body = resp.status, resp.headers.get("Retry-After"), \
                    await resp.text()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise TransientSendError(f"SMSAPI unreachable: {type(error).__name__}") from error
        if status == 429:
            raise RateLimited(_seconds(retry_after))
        answer = _json(body)
        if "error" in answer:
            code, message = answer.get("error"), str(answer.get("message", ""))[:200]
            if code == NOT_UNIQUE_IDX:  # an earlier try went, its answer did not reach us
                log.info("sms %s: SMSAPI has this idx already; counted as sent", row.id)
                return
            if code in PERMANENT_CODES:
                raise PermanentSendError(f"SMSAPI error {code}: {message}")
            raise TransientSendError(f"SMSAPI error {code}: {message}")
        if status >= 500:
            raise TransientSendError(f"SMSAPI answered HTTP {status}")
        if status >= 400:
            raise PermanentSendError(f"SMSAPI answered HTTP {status}")
        sent = (answer.get("list") or [{}])[0]
        if not sent.get("id"):
            raise TransientSendError(f"SMSAPI answered HTTP {status} without a message id")
        log.debug("sms %s sent as SMSAPI %s, %s part(s), %s point(s)", row.id, sent["id"],
                  sent.get("parts"), sent.get("points"))


def _seconds(retry_after: str | None) -> float:
    """Retry-After's delay-seconds; its HTTP-date form and nonsense wait the default."""
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _json(body: str) -> dict[str, Any]:
    """The answer's JSON object, or {} if it is none (an HTML error page)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
