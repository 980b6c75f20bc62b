"""Token buckets per key: how often one client, address or chat may do something.

Pure and in memory (no I/O): a bucket per key holds up to `burst` tokens and refills at
`per_hour / 3600` a second; a request takes one token or learns how many seconds until
one is back, which becomes `Retry-After` (HTTP 429), an SMTP 450, or the bot's "zwolnij".
Each process keeps its own buckets, so with N instances a client gets at most N times
the limit — still a limit, and without a round trip to the store on the hot path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Limit:
    per_hour: float
    burst: int


@dataclass
class RateLimiter:
    limit: Limit
    now: Callable[[], float]
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """0.0 if `key` may go on now (a token is taken), else seconds to wait."""
        now = self.now()
        rate = self.limit.per_hour / 3600.0
        tokens, stamp = self._buckets.get(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - stamp) * rate)
        if tokens >= 1.0:
            self._remember(key, (tokens - 1.0, now))
            return 0.0
        self._remember(key, (tokens, now))
        return math.ceil((1.0 - tokens) / rate) if rate > 0 else 3600.0

    def wait(self, key: str) -> float:
        """Seconds until `key` has a token again (0.0: it has one now); takes nothing."""
        now = self.now()
        rate = self.limit.per_hour / 3600.0
        tokens, stamp = self._buckets.get(key, (float(self.limit.burst), now))
        tokens = min(float(self.limit.burst), tokens + (now - stamp) * rate)
        return 0.0 if tokens >= 1.0 else math.ceil((1.0 - tokens) / rate)

    def _remember(self, key: str, state: tuple[float, float]) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            # a flood of distinct keys: forget the oldest half rather than grow for ever
            for old in list(self._buckets)[: self.max_keys // 2]:
                del self._buckets[old]
        self._buckets[key] = state


class Limits:
    """Every limit of one gateway process, built from settings (`EMIL_RATE_*`)."""

    def __init__(self, now: Callable[[], float], *, cases_per_client: float = 20,
                 cases_per_recipient: float = 5, mail_cases_per_sender: float = 20,
                 bot_per_chat: float = 600, code_failures_per_client: float = 20,
                 code_failures_per_case: float = 30,
                 page_posts_per_client: float = 30, mail_per_peer: float = 120,
                 paid_answers_per_address: float = 5) -> None:
        self.cases_per_client = RateLimiter(Limit(cases_per_client, 5), now)
        self.cases_per_recipient = RateLimiter(Limit(cases_per_recipient, 3), now)
        self.mail_cases_per_sender = RateLimiter(Limit(mail_cases_per_sender, 5), now)
        #: mail per connecting host, whatever senders it names (mail/server.py)
        self.mail_per_peer = RateLimiter(
            Limit(mail_per_peer, max(1, min(30, int(mail_per_peer)))), now)
        self.bot_per_chat = RateLimiter(Limit(bot_per_chat, 20), now)
        self.code_failures_per_client = RateLimiter(Limit(code_failures_per_client, 5), now)
        self.code_failures_per_case = RateLimiter(Limit(code_failures_per_case, 10), now)
        #: messages posted on the residents' case page, per client: one file per post, so
        #: the burst is a case's worth of files (20), never more than the hour's limit
        self.page_posts_per_client = RateLimiter(
            Limit(page_posts_per_client, max(1, min(20, int(page_posts_per_client)))), now)
        #: answers to one address on a paid channel (each one is an SMS the town pays
        #: for): far below `bot_per_chat`, so one number cannot spend the month's budget
        #: that urgent notices to everyone need; burst 3 (a case opened and two follow-ups)
        self.paid_answers_per_address = RateLimiter(
            Limit(paid_answers_per_address, max(1, min(3, int(paid_answers_per_address)))),
            now)
        #: `Reply.vital` answers (an opt-out's confirmation) past that limit: one now, two
        #: an hour, so STOP and START in turn cannot buy an SMS each
        self.vital_past_paid_limit = RateLimiter(Limit(2, 1), now)
        #: the bot says "zwolnij" at most this often per chat (no outbox flood either)
        self.slow_down_notices = RateLimiter(Limit(6, 1), now)
        #: console sign-in forms posted, per client. Not per address: a stranger could
        #: spend that for the person (handlers/staff.py limits the mail per person)
        self.sign_in_per_client = RateLimiter(Limit(30, 10), now)

    def code_wait(self, client: str) -> float:
        """Seconds `client` must wait before it may try an access code again (0.0: go
        on). Asked before the code is looked at: only the client's own failures count.

        Why no per-case refusal here. An access code has 80 random bits. Refusing every
        try on a case once it had N failures would stop distributed guessing, and would
        just as well let any stranger keep the resident out of their own case by typing
        N wrong codes — issue #18 saw five do it. So a case's failures never refuse its
        right code: :meth:`code_failed` counts them, and only a *wrong* code on a case
        past its limit is answered 429 with Retry-After (a slowdown that clients which
        obey it follow, and a signal in the log). That alone would not stop a guesser who
        ignores the answer; what does is arithmetic: with this limit a client gets about
        `code_failures_per_client` tries an hour, so a million addresses make 2·10^7 an
        hour, and finding one code of 2^80 takes on average 2^79 / 2·10^7 hours, some
        3·10^12 years."""
        return self.code_failures_per_client.wait(client)

    def code_failed(self, client: str, case: str) -> float:
        """Count a wrong access code against `client` and against the case: seconds the
        answer should ask to wait (the case is past its limit), or 0.0 for a plain "no
        such case or code". Never asked before a code is checked (see
        :meth:`code_wait`)."""
        self.code_failures_per_client.take(client)
        return self.code_failures_per_case.take(case)
