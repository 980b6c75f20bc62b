"""The outbox dispatcher: one lane per channel claims due rows and sends them.

Pacing is the channel's: the Telegram lane spaces messages evenly at `EMIL_TELEGRAM_RATE`
(no bursts: a bucket of N would allow bursts over Telegram's ~30/s) and
keeps about one second between two messages to the same chat. A `429` pauses the whole
lane for exactly `retry_after` and puts the row back without counting an attempt.
Claims are small (about one second of traffic), so a reply queued while a broadcast
drains is claimed in the next batch, ahead of the bulk rows (ordered by priority).

A delivered row is recorded as sent by a small queue per lane that writes its rows in
one commit a few milliseconds later (`Marks`); the lane starts no send while `bound`
rows are being sent or wait for that commit, and a crash repeats at most those.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers import health
from store.clock import Clock
from store.errors import is_transient
from store.models import Outbox
from store.outbox import (
    AddressFailing,
    PermanentSendError,
    RateLimited,
    TransientSendError,
    claim,
    mark_failed,
    mark_retry,
    mark_sent,
    reclaim_expired,
    release,
    renew_leases,
)

log = logging.getLogger(__name__)


class Sender(Protocol):
    channel: str

    async def send(self, row: Outbox) -> None: ...


class Metrics(Protocol):
    def sent(self, channel: str) -> None: ...
    def failed(self, channel: str, permanent: bool) -> None: ...
    def rate_limited(self, channel: str) -> None: ...
    def claimed(self, channel: str, rows: int) -> None: ...


class NoMetrics:
    def sent(self, channel: str) -> None: ...
    def failed(self, channel: str, permanent: bool) -> None: ...
    def rate_limited(self, channel: str) -> None: ...
    def claimed(self, channel: str, rows: int) -> None: ...


class Pacer:
    """Even spacing at `rate` per second, and never more than `rate` in any second.

    aiolimiter's bucket of one paces from each wake-up, so every late timer (a busy
    loop) is lost for good: measured 0.90 of the configured rate during a 20,000-row
    broadcast. Here the schedule advances by exact intervals and a late wake-up is made
    up by sending the next message sooner (by at most one interval), while a sliding
    one-second window keeps the count per second at `rate`.
    """

    def __init__(self, rate: float, *, time: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.rate = rate
        self.interval = 1.0 / rate
        self._next = -1e9
        self._window: deque[float] = deque()
        # the loop's clock unless a test brings its own (tests/test_rules.py)
        self._time = time
        self._sleep = sleep

    async def acquire(self) -> None:
        clock = self._time or asyncio.get_running_loop().time
        now = clock()
        self._next = max(self._next + self.interval, now - self.interval)
        wait = self._next - now
        while self._window and now - self._window[0] >= 1.0:
            self._window.popleft()
        if len(self._window) >= self.rate:
            wait = max(wait, self._window[0] + 1.0 - now)
        if wait > 0:
            await self._sleep(wait)
        self._window.append(clock())


#: rows a paced lane may have at risk — being delivered, or delivered and not yet
#: recorded as sent — which is what kill -9 sends twice: 50 ms of its pace, and never
#: fewer than 10, so that Telegram's round trip (~100 ms) does not slow 25/s. Marking each
#: row in its own commit let the marks fall behind the sends on SQLite (FULL: an fsync a
#: commit) and kill -9 in a 1,000-chat broadcast at 200/s sent 31 twice (bench/outbox_kill)
AT_RISK_WINDOW = 0.05
AT_RISK_MIN = 10
#: how long a delivered row waits for others to share its commit: a paced lane's rows
#: come one by one, an unpaced lane's as a claimed batch finishes (one commit for it)
MARK_DELAY_PACED = 0.005
MARK_DELAY_UNPACED = 0.05


class Marks:
    """Rows at risk of going twice — being sent, or delivered and not yet recorded as
    sent — and the grouped writing of their marks.

    The lane calls `begin()` before each send and `finish()` after it. A delivered row
    joins a queue; a flush starts with the first one and writes everything queued by then
    in one commit, after `delay`, or at once when the lane is waiting for room. `room()`
    holds the lane's next send while `bound` rows are at risk: that is the most a crash
    sends twice. Each row stays held (its lease renewed) until its mark is written.
    """

    def __init__(self, write: Callable[[list[Outbox]], Awaitable[None]],
                 done: Callable[[list[Outbox]], None], *, bound: int, delay: float) -> None:
        self._write = write
        self._done = done
        self.bound = max(1, bound)
        self.delay = delay
        self._sending = 0
        self._queue: list[Outbox] = []
        self._writing = 0
        self._hurry = asyncio.Event()
        self._changed = asyncio.Event()
        self._flush: asyncio.Task | None = None

    @property
    def at_risk(self) -> int:
        return self._sending + len(self._queue) + self._writing

    async def room(self) -> None:
        """Return when one more row may be sent without passing the bound."""
        while self.at_risk >= self.bound:
            self._hurry.set()  # the lane waits: no point in gathering more for the commit
            self._changed.clear()
            await self._changed.wait()

    def begin(self) -> None:
        """A send starts (call right after `room()`)."""
        self._sending += 1

    def finish(self, row: Outbox, delivered: bool) -> None:
        """A send ended; a delivered row waits for its mark."""
        self._sending -= 1
        if not delivered:
            self._changed.set()
            return
        self._queue.append(row)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_all())

    def sends_over(self) -> None:
        """Every send has ended, including any cancelled before it began (whose
        `finish` never ran)."""
        self._sending = 0
        self._changed.set()

    async def settle(self) -> None:
        """Return when every delivered row so far is written (a batch's end, shutdown)."""
        while self._flush is not None and not self._flush.done():
            await asyncio.shield(self._flush)
        if self._queue:  # left by a flush that was cancelled
            self._flush = asyncio.create_task(self._flush_all())
            await asyncio.shield(self._flush)

    async def _flush_all(self) -> None:
        while self._queue:
            if not self._hurry.is_set():
                try:
                    await asyncio.wait_for(self._hurry.wait(), self.delay)
                except TimeoutError:
                    pass
            rows, self._queue = self._queue, []
            self._hurry.clear()
            self._writing = len(rows)
            try:
                await self._write(rows)
            except asyncio.CancelledError:
                self._queue[:0] = rows  # not written: `settle` takes them again
                raise
            except Exception:  # not the store being away (that is retried): a bug
                log.exception("could not mark %d delivered rows sent; they go again when "
                              "their leases run out", len(rows))
                self._done(rows)
            else:
                self._done(rows)
            finally:
                self._writing = 0
                self._changed.set()


class Lane:
    def __init__(
        self,
        sender: Sender,
        clock: Clock,
        worker: str,
        *,
        rate: float | None = None,
        chat_interval: float | None = None,
        batch: int = 50,
        concurrency: int = 32,
        lease: float = 60.0,
        max_attempts: int = 8,
        poll_seconds: float = 1.0,
        linger: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.sender = sender
        self.channel = sender.channel
        self.clock = clock
        self.worker = worker
        self.limiter = Pacer(rate) if rate else None
        self.chat_interval = chat_interval
        # about one second of traffic per claim, so a reply queued behind a broadcast waits
        # at most that long; capped so that several instances share a backlog
        self.batch = min(max(1, int(rate)), 4 * batch) if rate else batch
        self._concurrency = concurrency
        self.concurrency = asyncio.Semaphore(concurrency)
        self.lease = timedelta(seconds=lease)
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.linger = linger
        # a paced lane (Telegram) delivers a claimed batch over a second and keeps
        # AT_RISK_WINDOW of its pace at risk; an unpaced one (email) sends a batch at once
        # and may have one batch at risk, as when a batch was marked when it ended
        self.marks = Marks(
            self._mark_sent_surely, self._forget,
            bound=max(AT_RISK_MIN, math.ceil(rate * AT_RISK_WINDOW)) if rate else self.batch,
            delay=MARK_DELAY_PACED if rate else MARK_DELAY_UNPACED)
        self.metrics = metrics or NoMetrics()
        self.wake = asyncio.Event()
        # both from the injected clock, so tests move time instead of sleeping
        self._paused_until: datetime | None = None
        self._next_for_chat: dict[str, datetime] = {}
        self._inflight: set[asyncio.Task] = set()
        #: rows claimed and not yet marked, whose leases the renewer extends
        self._holding: dict[int, Outbox] = {}
        self._last_reclaim: datetime | None = None
        #: called after every claim that reached the store (the supervisor's "I am up")
        self.beat: Callable[[], None] = lambda: None

    def notify(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        renewing = asyncio.create_task(self._renew_leases_forever())
        try:
            while True:
                self.wake.clear()
                # pipelined: the next batch is claimed while this one's last sends are in
                # flight, so the pace never stalls between batches
                claimed = await self.run_once(wait=False)
                self.beat()
                if claimed >= self.batch:
                    continue
                if not claimed:
                    try:
                        await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
                    except TimeoutError:
                        pass
                # rows queued in a burst are claimed together, not one claim each
                await asyncio.sleep(self.linger)
        finally:
            renewing.cancel()
            inflight = list(self._inflight)
            for task in inflight:
                task.cancel()
            # let cancelled sends settle and the delivered rows' marks be written before
            # the store closes (a delivered row left "sending" would go out again)
            await asyncio.gather(*inflight, return_exceptions=True)
            await self.marks.settle()
            # a send cancelled before it ever ran released nothing: every send is over
            # now, and a restarted lane (tasks.supervise) must not wait for them
            self.marks.sends_over()
            self.concurrency = asyncio.Semaphore(self._concurrency)

    async def run_once(self, wait: bool = True) -> int:
        """Claim one batch and start sending it; returns the number of rows claimed.
        With `wait`, returns only when every send of the batch has finished."""
        now = self.clock.now()
        if self._last_reclaim is None or (now - self._last_reclaim) > self.lease / 4:
            self._last_reclaim = now
            await reclaim_expired(now)
        rows = await claim(self.channel, self.worker, now, self.lease, self.batch)
        self.metrics.claimed(self.channel, len(rows))
        self._holding.update((row.id, row) for row in rows)
        tasks: list[asyncio.Task] = []
        for row in rows:
            if self._paused_until is not None:
                pause = (self._paused_until - self.clock.now()).total_seconds()
                if pause > 0:
                    await asyncio.sleep(min(pause, 3600))
            spaced = bool(self.chat_interval) and not row.payload.get("answer_callback")
            if spaced:
                free_at = self._next_for_chat.get(row.recipient)
                if free_at is not None and free_at > self.clock.now():
                    await release(row, free_at)
                    self._holding.pop(row.id, None)
                    continue
            # what a crash would send twice stays within the bound: wait for the marks
            # (before the pacer, whose window counts a send when it lets it go)
            await self.marks.room()
            if self.limiter:
                await self.limiter.acquire()
            if spaced:  # counted from the moment it really goes, after the pacer's wait
                self._next_for_chat[row.recipient] = self.clock.now() + timedelta(
                    seconds=self.chat_interval or 0)
            await self.concurrency.acquire()
            self.marks.begin()
            tasks.append(self._start(self._send(row)))
        if tasks and wait:
            await asyncio.gather(*tasks)
            await self.marks.settle()
        self._forget_old_chats()
        return len(rows)

    async def _renew_leases_forever(self) -> None:
        """While sends are in flight, extend their rows' leases every third of a lease:
        a relay slower than the lease must not let another claim send them again."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            holding = list(self._holding.values())
            if holding:
                try:
                    await renew_leases(holding, self.clock.now(), self.lease)
                except Exception as error:  # noqa: BLE001 - retried at the next tick
                    log.warning("could not renew %d leases on %s: %s", len(holding),
                                self.channel, error)

    def _start(self, work: Coroutine[Any, Any, None]) -> asyncio.Task:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    def _forget(self, rows: list[Outbox]) -> None:
        """Rows recorded as sent are no longer held (their leases no longer renewed)."""
        for row in rows:
            self._holding.pop(row.id, None)

    async def _mark_sent_surely(self, rows: list[Outbox]) -> None:
        """Record delivered rows in one commit, retrying through a store outage: a row
        left "sending" would be sent again when its lease runs out (the lease keeps being
        renewed meanwhile, since the rows stay held, and the lane sends no more)."""
        delay = 0.2
        while True:
            try:
                await mark_sent(rows, self.clock.now())
                return
            except Exception as error:  # noqa: BLE001 - the store is away; try again
                if not is_transient(error):
                    raise
                log.warning("could not mark %d sent rows on %s yet: %s", len(rows),
                            self.channel, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _forget_old_chats(self) -> None:
        if len(self._next_for_chat) > 10_000:
            now = self.clock.now()
            self._next_for_chat = {k: v for k, v in self._next_for_chat.items() if v > now}

    async def _send(self, row: Outbox) -> None:
        delivered = False
        try:
            await self.sender.send(row)
        except RateLimited as error:
            # Telegram says exactly how long to wait: the whole bot waits that long
            self.metrics.rate_limited(self.channel)
            resume = self.clock.now() + timedelta(seconds=error.retry_after)
            self._paused_until = max(self._paused_until or resume, resume)
            await release(row, resume)
        except AddressFailing as error:
            # the address, not the message: marked failing, and what waits for it moves on
            log.info("outbox #%s failed for good on %s, the address fails (%s): %s", row.id,
                     self.channel, error.reason, error)
            self.metrics.failed(self.channel, True)
            now = self.clock.now()
            await mark_failed(row, now, str(error))
            await health.address_failing(self.channel, row.recipient, now, error.reason)
            self.notify_others()
        except PermanentSendError as error:
            log.info("outbox #%s failed for good on %s: %s", row.id, self.channel, error)
            self.metrics.failed(self.channel, True)
            await mark_failed(row, self.clock.now(), str(error))
            if row.fallbacks:
                self.notify_others()
        except (TransientSendError, Exception) as error:  # noqa: BLE001 - a row never kills the lane
            if not isinstance(error, TransientSendError):
                log.exception("outbox #%s: unexpected error on %s", row.id, self.channel)
            self.metrics.failed(self.channel, False)
            if row.attempts + 1 >= self.max_attempts:
                await mark_failed(row, self.clock.now(), f"gave up: {error}")
                self.notify_others()
            else:
                await mark_retry(row, self.clock.now(), str(error))
        else:
            self.metrics.sent(self.channel)
            delivered = True  # held until its mark is written
        finally:
            self.concurrency.release()
            if not delivered:
                self._holding.pop(row.id, None)
            self.marks.finish(row, delivered)

    notify_others = staticmethod(lambda: None)


class Dispatcher:
    """All lanes together; `notify()` wakes them after a commit that queued rows."""

    def __init__(self, lanes: list[Lane]) -> None:
        self.lanes = {lane.channel: lane for lane in lanes}
        for lane in lanes:
            lane.notify_others = self.notify
        #: with `EMIL_WORKER_PROCESS`, the intake process's dispatcher wakes the worker's
        self.elsewhere: Callable[[], None] = lambda: None

    def notify(self) -> None:
        for lane in self.lanes.values():
            lane.notify()
        self.elsewhere()

    async def drain(self, max_rounds: int = 100) -> int:
        """Send everything due now (tests and `run-job`); returns rows claimed."""
        total = 0
        for _ in range(max_rounds):
            claimed = 0
            for lane in self.lanes.values():
                claimed += await lane.run_once()
            total += claimed
            if not claimed:
                break
        return total
