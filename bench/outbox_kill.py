"""What a crash sends twice: a 1,000-chat Telegram broadcast at 200 messages/s, the real
`emilanowek serve` process killed with SIGKILL half-way, then started again.

A message goes twice when the Bot API had it but its row was not yet marked sent when the
process died. The figure to watch is the duplicates against what was in flight at the
kill: messages the Bot API double had received, less rows the store had marked sent.

Run: `python -m bench.outbox_kill` (SQLite, a scratch file), or
`python -m bench.outbox_kill postgres://…/DATABASE` (or `EMIL_BENCH_DATABASE_URL`) for
PostgreSQL — that database's `public` schema is dropped and made again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from aiohttp.test_utils import TestServer

from bench.common import machine, tempdir
from store.db import Store, is_postgres
from store.models import Outbox
from store.outbox import PRIORITY_BULK, Delivery, enqueue
from tests.conftest import reset_postgres
from tests.doubles.botapi import BotApiDouble
from tests.test_process import gateway_env, serve, wait_http

CHATS = 1000
RATE = 200
KILL_AFTER = CHATS // 2


async def counts() -> tuple[int, int]:
    """Rows marked sent, and rows claimed and not yet marked ("sending")."""
    return (await Outbox.filter(status="sent").count(),
            await Outbox.filter(status="sending").count())


async def run(url: str, tmp: Path) -> dict[str, int | float]:
    if is_postgres(url):
        await reset_postgres(url)
    store = Store(url)
    await store.open()
    await enqueue([Delivery(key=f"b:{n}", channel="telegram", recipient=str(10_000 + n),
                            payload={"text": f"Ogłoszenie {n}"}, priority=PRIORITY_BULK)
                   for n in range(CHATS)], datetime.now(timezone.utc))
    await store.close()
    double = BotApiDouble()  # no limits of its own: 200/s is over Telegram's, on purpose
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    try:
        double.url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
        env = gateway_env(url, double, tmp, EMIL_TELEGRAM_RATE=str(RATE),
                          EMIL_TELEGRAM_CHAT_INTERVAL="0")
        first = await serve(env, tmp / "first.log")
        await double.wait_for(KILL_AFTER, timeout=120)
        os.killpg(first.pid, signal.SIGKILL)
        await first.wait()
        received = len(double.sent)
        before = [s.at for s in double.sent]
        store = Store(url)
        await store.open(migrate=False)
        marked, claimed = await counts()
        await store.close()

        start = time.perf_counter()
        second = await serve(env, tmp / "second.log")
        try:
            await wait_http(env["EMIL_HTTP_PORT"], timeout=60)
            up = time.perf_counter() - start
            await double.wait_for(CHATS, timeout=120, distinct=True)
            after = [s.at for s in double.sent[received:]]
            # the lease of the killed process's claim must run out before its rows go again
            store = Store(url)
            await store.open(migrate=False)
            for _ in range(200):
                if (await counts())[0] == CHATS:
                    break
                await asyncio.sleep(0.1)
            final, _ = await counts()
            await store.close()
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 30)
    finally:
        await server.close()
    return {"received": received, "marked": marked, "claimed": claimed,
            "unmarked": received - marked, "duplicates": len(double.sent) - CHATS,
            "missing": CHATS - len({s.chat_id for s in double.sent}), "final": final,
            "up": up, "rate_before": pace(before), "rate_after": pace(after)}


def pace(stamps: list[float]) -> float:
    """Messages per second from the first to the last."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


async def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EMIL_BENCH_DATABASE_URL")
    with tempdir() as tmp:
        url = url or f"sqlite://{tmp}/bench.db"
        engine = "PostgreSQL" if is_postgres(url) else "SQLite"
        print(f"machine: {machine()}, {engine}")
        r = await run(url, Path(tmp))
    print(f"kill -9 after {r['received']} of {CHATS} messages at {RATE}/s (achieved "
          f"{r['rate_before']:.0f}/s): {r['marked']} marked sent, {r['unmarked']} sent but "
          f"not marked (in flight at the kill), {r['claimed']} claimed and not marked; "
          f"restarted (up in {r['up']:.1f} s, then {r['rate_after']:.0f}/s): duplicates "
          f"{r['duplicates']}, missing {r['missing']}, {r['final']} rows sent")


if __name__ == "__main__":
    asyncio.run(main())
