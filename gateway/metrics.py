"""Prometheus metrics, on a registry of the app's own (no module-level singletons)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from handlers.unread import count_waiting
from store import spend
from store.clock import Clock
from store.outbox import outcome_counts, pending_stats

#: how often the rows-by-state gauge is recounted (see GatewayMetrics.count_outcomes)
OUTCOMES_EVERY = timedelta(minutes=1)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sent_total = Counter("emil_outbox_sent", "Messages sent", ["channel"], registry=r)
        self.failed_total = Counter("emil_outbox_failures", "Send failures", ["channel", "kind"],
                                    registry=r)
        self.throttled_total = Counter("emil_telegram_429", "429 answers obeyed", ["channel"],
                                       registry=r)
        self.depth = Gauge("emil_outbox_depth", "Rows waiting to leave", ["channel"], registry=r)
        self.oldest = Gauge("emil_outbox_oldest_pending_seconds", "Age of the oldest waiting row",
                            ["channel"], registry=r)
        self.claims_total = Counter("emil_outbox_claims", "Claim queries by outcome",
                                    ["channel", "outcome"], registry=r)
        self.inbound_total = Counter("emil_inbound", "Inbound messages stored", ["channel"],
                                     registry=r)
        self.hooks_total = Counter("emil_hooks", "Hook deliveries", ["source", "result"],
                                   registry=r)
        self.restarts_total = Counter("emil_part_restarts", "Background part restarts after a "
                                      "failure", ["part"], registry=r)
        # accepted mail that could not become a case (handlers/unread.py): counted by this
        # process's inbox as it is set aside; the gauge is read from the store, so every
        # instance shows the same number of mails still waiting for a clerk
        self.unread_total = Counter("emil_unread_mail", "Mail set aside for the office, by "
                                    "why (unreadable, failed)", ["reason"], registry=r)
        # what each paid channel spent in its latest month (store/spend.py), read from the
        # store so that every instance shows the same count, labelled with the month
        self.spend_units = Gauge("emil_channel_spend_units", "Units a paid channel (SMS: "
                                 "parts) spent in its latest month", ["channel", "month"],
                                 registry=r)
        self.unread_waiting = Gauge("emil_unread_mail_unhandled", "Unread mail no clerk has "
                                    "handled yet", registry=r)
        # how rows ended, read from the store (every instance shows the same): delivered,
        # sent, bounced, failed, and those still waiting (issue #19)
        self.outcomes = Gauge("emil_outbox_rows", "Outbox rows by channel and state",
                              ["channel", "state"], registry=r)
        self._outcomes_at: datetime | None = None

    def restarted(self, part: str) -> None:
        self.restarts_total.labels(part).inc()

    def unread(self, reason: str) -> None:
        self.unread_total.labels(reason).inc()

    def sent(self, channel: str) -> None:
        self.sent_total.labels(channel).inc()

    def failed(self, channel: str, permanent: bool) -> None:
        self.failed_total.labels(channel, "permanent" if permanent else "transient").inc()

    def claimed(self, channel: str, rows: int) -> None:
        self.claims_total.labels(channel, "rows" if rows else "empty").inc()

    def rate_limited(self, channel: str) -> None:
        self.throttled_total.labels(channel).inc()

    async def render(self, clock: Clock, channels: Iterable[str]) -> bytes:
        """The exposition; each registered channel's outbox depth is shown, at 0 too."""
        stats = await pending_stats()
        now = clock.now()
        for channel in dict.fromkeys([*channels, *stats]):
            count, oldest = stats.get(channel, (0, None))
            self.depth.labels(channel).set(count)
            self.oldest.labels(channel).set((now - oldest).total_seconds() if oldest else 0)
        self.unread_waiting.set(await count_waiting())
        await self.count_outcomes(now)
        self.spend_units.clear()
        for channel, (month, units) in (await spend.latest()).items():
            self.spend_units.labels(channel, month).set(units)
        return generate_latest(self.registry)

    async def count_outcomes(self, now: datetime) -> None:
        """Rows per channel and status, recounted at most once every OUTCOMES_EVERY: the
        count reads the whole outbox (a covering index scan: 0.12 s for 500,000 rows on
        SQLite, measured), too much for every 15-second scrape. A pair no row is in any
        more disappears rather than keep its last count (cleared and set with no await
        between: a scrape never sees it half done)."""
        if self._outcomes_at is not None and now - self._outcomes_at < OUTCOMES_EVERY:
            return
        self._outcomes_at = now
        counts = await outcome_counts()
        self.outcomes.clear()
        for (channel, state), n in counts.items():
            self.outcomes.labels(channel, state).set(n)
