"""The outbox dispatcher: retries, Telegram's retry_after, rate limits, fallbacks."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import DISPATCHER
from store.models import Outbox
from store.outbox import Delivery, enqueue
from tests.conftest import Gateway


def tg(chat: int, text: str, key: str | None = None, priority: int = 5) -> Delivery:
    return Delivery(key=key or f"t:{chat}:{text}", channel="telegram", recipient=str(chat),
                    payload={"text": text}, priority=priority)


async def test_retry_after_is_obeyed_exactly(gw: Gateway) -> None:
    await enqueue([tg(1, "a")], gw.clock.now())
    gw.botapi.fail_next(429, "Too Many Requests: retry after 7", retry_after=7)
    await gw.drain()
    row = await Outbox.get()
    assert row.status == "pending" and row.attempts == 0
    assert row.next_attempt_at == gw.clock.now() + timedelta(seconds=7)
    gw.clock.advance(seconds=6.9)
    await gw.drain()
    assert gw.botapi.sent == []
    gw.clock.advance(seconds=0.1)
    await gw.drain()
    assert gw.botapi.texts_to(1) == ["a"]


async def test_transient_errors_back_off_then_succeed(gw: Gateway) -> None:
    await enqueue([tg(2, "b")], gw.clock.now())
    gw.botapi.fail_next(502, "Bad Gateway")
    await gw.drain()
    row = await Outbox.get()
    assert row.status == "pending" and row.attempts == 1 and "Bad Gateway" in row.last_error
    delay = (row.next_attempt_at - gw.clock.now()).total_seconds()
    assert 1 <= delay <= 2  # first backoff step: 2 s with jitter
    gw.clock.advance(seconds=2)
    await gw.drain()
    row = await Outbox.get()
    assert row.status == "sent" and row.attempts == 2


async def test_gives_up_after_max_attempts_with_the_reason(gw: Gateway) -> None:
    await enqueue([tg(3, "c")], gw.clock.now())
    for _ in range(gw.settings.outbox_max_attempts):
        gw.botapi.fail_next(502, "Bad Gateway")
    for _ in range(gw.settings.outbox_max_attempts):
        await gw.drain()
        gw.clock.advance(hours=2)
    row = await Outbox.get()
    assert row.status == "failed" and row.last_error.startswith("gave up")


async def test_same_key_is_queued_once(gw: Gateway) -> None:
    await enqueue([tg(4, "d", key="k1"), tg(4, "d", key="k1")], gw.clock.now())
    await enqueue([tg(4, "d", key="k1")], gw.clock.now())
    await gw.drain()
    assert gw.botapi.texts_to(4) == ["d"]


async def test_replies_go_before_bulk(gw: Gateway) -> None:
    await enqueue([tg(100 + n, "bulk", priority=9) for n in range(5)], gw.clock.now())
    await enqueue([tg(99, "reply", priority=0)], gw.clock.now())
    await gw.drain()
    assert gw.botapi.sent[0].text == "reply"


async def test_rate_limits_hold_against_an_enforcing_double(botapi, settings, aiohttp_client, clock
                                                           ) -> None:
    """With real time at 10/s and one per second per chat, the double never says 429.
    The pacer keeps at most `rate` sends in any second of *our* clock; arrival jitter at
    the far end needs the same kind of margin as 25/s against Telegram's ~30/s, so the
    double enforces 12/s."""
    botapi.enforce_overall = 12
    botapi.enforce_per_chat = 1
    settings = settings.model_copy(update={"telegram_rate": 10, "telegram_chat_interval": 1.0})
    from store.clock import Clock

    app = create_app(settings, clock=Clock(), run_workers=True)
    client: TestClient = await aiohttp_client(app)
    rows = [tg(5000 + n, "x") for n in range(20)] + [tg(7, f"same chat {n}") for n in range(3)]
    await enqueue(rows, Clock().now())
    client.app[DISPATCHER].notify()
    await botapi.wait_for(23, timeout=20)
    assert botapi.throttled == 0, botapi.breaches
    same = [s.at for s in botapi.messages_to(7)]
    assert all(b - a >= 0.9 for a, b in zip(same, same[1:], strict=False))
    for _ in range(100):  # the last row's "sent" mark commits just after the double answers
        if await Outbox.filter(status="sent").count() == 23:
            break
        await asyncio.sleep(0.05)
    assert await Outbox.filter(status="sent").count() == 23


class SlowRelay:
    """A mail relay slower than the outbox lease: each send takes `seconds`."""

    channel = "email"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sends: list[int] = []

    async def send(self, row: Outbox) -> None:
        self.sends.append(row.id)
        await asyncio.sleep(self.seconds)


async def test_a_relay_slower_than_the_lease_delivers_each_message_once(gw: Gateway) -> None:
    """Issue #11: a batch slower than the lease was reclaimed and sent again while the
    first send still ran. Now the lease is renewed while sending, and marks take effect
    only for the row's holder."""
    from gateway.dispatcher import Lane
    from store.clock import Clock

    clock = Clock()  # real time: the lease must really run out
    relay = SlowRelay(2.5)
    mail = [Delivery(key=f"m{n}", channel="email", recipient=f"r{n}@example.pl",
                     payload={"subject": "s", "text": "t", "html": "", "from": "a@b.pl",
                              "message_id": f"<m{n}@b.pl>"}) for n in range(3)]
    await enqueue(mail, clock.now())
    lane = Lane(relay, clock, "test", lease=0.9, poll_seconds=0.05)
    running = asyncio.create_task(lane.run())
    for _ in range(200):
        if await Outbox.filter(status="sent").count() == 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # a lease or two more: nothing may go out again
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert sorted(relay.sends) == sorted(set(relay.sends)) and len(relay.sends) == 3
    assert await Outbox.filter(status="sent").count() == 3


async def test_a_mark_from_a_claim_that_lost_the_row_changes_nothing(gw: Gateway) -> None:
    from store.outbox import claim, mark_sent, reclaim_expired

    await enqueue([tg(8, "z")], gw.clock.now())
    [first] = await claim("telegram", "a", gw.clock.now(), timedelta(seconds=1), 10)
    gw.clock.advance(seconds=2)
    await reclaim_expired(gw.clock.now())
    [second] = await claim("telegram", "b", gw.clock.now(), timedelta(seconds=60), 10)
    await mark_sent([first], gw.clock.now())  # the slow first claim finishes late
    row = await Outbox.get()
    assert row.status == "sending" and row.claimed_by == second.claimed_by
    await mark_sent([second], gw.clock.now())
    assert (await Outbox.get()).status == "sent"


class CountingBot:
    """A Bot API that answers at once and notes, at every send, how many rows it has
    delivered that the store has not yet recorded as sent."""

    channel = "telegram"

    def __init__(self) -> None:
        self.delivered = 0
        self.marked = 0
        self.most_unmarked = 0

    async def send(self, row: Outbox) -> None:
        self.delivered += 1
        self.most_unmarked = max(self.most_unmarked, self.delivered - self.marked)


async def test_delivered_rows_left_unmarked_stay_within_the_bound_when_commits_are_slow(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #18, fault 14: kill -9 in a 1,000-chat broadcast at 200/s sent 31 messages
    twice on SQLite, because each row was marked in its own fully synced commit and the
    marks fell behind the sends (up to the lane's 32 concurrent sends). A crash repeats
    the rows being sent and those delivered and not yet marked: the lane must start no
    send while its bound of them (50 ms of its pace, at least 10) are at risk."""
    from gateway import dispatcher
    from store.clock import Clock

    bot = CountingBot()
    real_mark_sent = dispatcher.mark_sent
    disk = asyncio.Lock()

    async def slow_mark_sent(rows: list[Outbox], now: datetime) -> None:
        async with disk:  # one writer, and every commit waits for a slow disk
            await asyncio.sleep(0.03)
            await real_mark_sent(rows, now)
            bot.marked += len(rows)

    monkeypatch.setattr(dispatcher, "mark_sent", slow_mark_sent)
    clock = Clock()
    await enqueue([tg(20_000 + n, "x") for n in range(120)], clock.now())
    lane = dispatcher.Lane(bot, clock, "test", rate=200, chat_interval=1.0)
    assert lane.marks.bound == 10
    while await lane.run_once():
        pass
    assert bot.delivered == 120
    assert await Outbox.filter(status="sent").count() == 120
    assert bot.most_unmarked <= 10
