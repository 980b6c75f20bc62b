"""A broadcast to 20,000 staff on Telegram: how long the fan-out takes to enqueue, and
the delivery rate achieved against the Bot API double enforcing Telegram's limits
(30/s overall, one per second per chat), as a fraction of `EMIL_TELEGRAM_RATE`.

Run: `python -m bench.announcement_broadcast` (goal ≥ 0.95 with zero 429s).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from bench.common import machine, telegram_gateway
from gateway.keys import SERVICES
from handlers import announcements
from store.models import Identity, Outbox, Person

RECIPIENTS = 20_000
RATE = 25.0
WINDOW = 30.0  # seconds of delivery to measure (the whole drain takes over 13 minutes)


async def main() -> None:
    print(f"machine: {machine()}")
    async with telegram_gateway(RATE, quiet_start="00:00", quiet_end="00:00") as (double, app):
        now = datetime.now(timezone.utc)
        await Person.bulk_create([Person(name=f"Pracownik {n}", roles=["staff"],
                                         units=["urzad"], quiet_start="00:00", quiet_end="00:00",
                                         created_at=now) for n in range(RECIPIENTS)],
                                 batch_size=2000)
        people = await Person.all().values_list("id", flat=True)
        await Identity.bulk_create([Identity(person_id=pid, channel="telegram",
                                             address=str(1_000_000 + pid), created_at=now)
                                    for pid in people], batch_size=2000)
        ctx = app[SERVICES]
        start = time.perf_counter()
        announcement = await announcements.create(ctx, author=None, title="Ćwiczenia ewakuacyjne",
                                                  body="W piątek o **9:00**.",
                                                  audience={"units": ["urzad"], "roles": []})
        await announcements.publish(ctx, announcement)
        enqueue_seconds = time.perf_counter() - start
        queued = await Outbox.filter(cause=f"ann:{announcement.id}").count()
        print(f"fan-out: {queued} recipients enqueued in {enqueue_seconds:.2f} s")
        enqueued_at = time.monotonic()  # the double stamps with the same monotonic clock
        await asyncio.sleep(WINDOW)
        # steady state: after the fan-out finished (during it, rendering 20,000 payloads
        # competes with sending for the one event loop)
        sent = [s for s in double.sent if s.method == "sendMessage" and s.at >= enqueued_at]
        achieved = (len(sent) - 1) / (sent[-1].at - sent[0].at) if len(sent) > 1 else 0.0
    print(f"delivery over {WINDOW:.0f} s: {len(sent)} messages, {achieved:.2f} msg/s of "
          f"EMIL_TELEGRAM_RATE={RATE:.0f}: ratio {achieved / RATE:.3f} (goal ≥ 0.95), "
          f"429 answers: {double.throttled}")


if __name__ == "__main__":
    asyncio.run(main())
