"""How long a reader waits for a catalogue answer in the bot (#20: within 1 s at the 95th
percentile with the SRU server 200 ms away).

A running gateway with its workers (webhook mode; the Bot API double enforcing Telegram's
limits) searches the SRU double of tests/doubles/sru.py (the Polish MARCXML fixture),
which waits DELAY seconds (0.2) before each answer. READERS chats (4) at a time each send
`/szukaj autor: Sienkiewicz`; the time from the webhook's POST to the Bot API double
receiving that chat's answer is recorded, RUNS (200) in all. Prints the median and the
95th percentile.

Run: `python -m bench.catalogue_search` (SQLite), or with
`EMIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from aiohttp.test_utils import TestClient, TestServer

from bench.common import bench_settings, machine, tempdir
from gateway.app import create_app
from tests.doubles.botapi import BotApiDouble, message_update
from tests.doubles.sru import SruDouble

RUNS = int(os.environ.get("RUNS", 200))
READERS = int(os.environ.get("READERS", 4))
DELAY = float(os.environ.get("DELAY", 0.2))


async def main() -> None:
    botapi = BotApiDouble(enforce_overall=30, enforce_per_chat=1)
    bot_server = TestServer(botapi.app(), host="127.0.0.1")
    sru = SruDouble(delay=DELAY)
    sru_server = TestServer(sru.app(), host="127.0.0.1")
    await bot_server.start_server()
    await sru_server.start_server()
    times: list[float] = []
    with tempdir() as tmp:
        app = create_app(bench_settings(
            tmp, telegram_token="1:BENCH", telegram_mode="webhook",
            telegram_api_url=str(bot_server.make_url("")).rstrip("/"),
            telegram_webhook_secret="s", catalogue_sru_url=str(sru_server.make_url("/sru"))))
        async with TestClient(TestServer(app)) as client:

            async def reader(first: int) -> None:
                for chat in range(first, first + RUNS // READERS):
                    started = time.perf_counter()
                    resp = await client.post(
                        "/telegram/webhook", json=message_update(chat, "/szukaj autor: Sienkiewicz"),
                        headers={"X-Telegram-Bot-Api-Secret-Token": "s"})
                    assert resp.status == 200
                    while not botapi.texts_to(chat):
                        await asyncio.sleep(0.002)
                    times.append(time.perf_counter() - started)
                    assert "Potop" in botapi.texts_to(chat)[0]

            await asyncio.gather(*(reader(10_000 * (n + 1)) for n in range(READERS)))
    await sru_server.close()
    await bot_server.close()
    times.sort()
    p95 = times[int(len(times) * 0.95) - 1]
    print(f"catalogue search in the bot, {len(times)} searches by {READERS} readers at a time, "
          f"SRU server {DELAY * 1000:.0f} ms away ({machine()}): median "
          f"{statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    asyncio.run(main())
