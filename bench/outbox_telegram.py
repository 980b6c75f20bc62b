"""Outbox Telegram throughput vs the configured rate, against the Bot API double enforcing
Telegram's limits (30 messages/s overall, one per second per chat; a breach answers 429).

Run: `python -m bench.outbox_telegram` (target ratio ≥ 0.95 with no 429).
"""

from __future__ import annotations

import asyncio
import time

from bench.common import machine, telegram_gateway
from gateway.keys import CLOCK, DISPATCHER
from store.outbox import PRIORITY_BULK, Delivery, enqueue

RATE = 25.0
COUNT = 500


async def main() -> None:
    print(f"machine: {machine()}")
    async with telegram_gateway(RATE) as (double, app):
        # 90% broadcast to distinct chats, 10% a second message to an already-used chat
        rows = [Delivery(key=f"b:{n}", channel="telegram", recipient=str(10_000 + n),
                         payload={"text": f"Ogłoszenie {n}"}, priority=PRIORITY_BULK)
                for n in range(int(COUNT * 0.9))]
        rows += [Delivery(key=f"r:{n}", channel="telegram", recipient=str(10_000 + n),
                          payload={"text": f"Druga wiadomość {n}"}) for n in range(COUNT - len(rows))]
        await enqueue(rows, app[CLOCK].now())
        start = time.perf_counter()
        app[DISPATCHER].notify()
        await double.wait_for(COUNT, timeout=COUNT / RATE * 3)
        elapsed = time.perf_counter() - start
    achieved = (COUNT - 1) / (double.sent[-1].at - double.sent[0].at)
    print(f"outbox → Telegram: {COUNT} messages in {elapsed:.1f} s, achieved {achieved:.2f} msg/s, "
          f"configured {RATE:.0f} msg/s, ratio {achieved / RATE:.3f} (target ≥ 0.95), "
          f"429 answers: {double.throttled}")


if __name__ == "__main__":
    asyncio.run(main())
