"""Outbox throughput with 1, 2 and 3 `serve` instances on PostgreSQL, against the Bot API
double with no rate limit (`EMIL_TELEGRAM_SINGLE_SENDER=false`, so every instance sends),
and the claim-conflict rate: claims that came back empty while rows were still waiting
(SKIP LOCKED skipped them all) and rows sent more than once.

Run: `python -m bench.cluster_outbox` (needs PostgreSQL; `EMIL_BENCH_DATABASE_URL`,
default `postgres://postgres@127.0.0.1:5432/emil_bench`, created if missing).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from bench.common import machine, tempdir
from store.db import Store
from store.outbox import PRIORITY_BULK, Delivery, enqueue
from tests.doubles.botapi import BotApiDouble
from tests.test_process import free_port, serve, wait_http

URL = os.environ.get("EMIL_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/emil_bench")
ROWS = 6000


async def fresh_database() -> None:
    base, _, name = URL.rpartition("/")
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://") + "/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(URL.replace("postgres://", "postgresql://"))
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    await conn.close()


async def run(instances: int, tmp: Path) -> tuple[float, int, int, int]:
    await fresh_database()
    store = Store(URL)
    await store.open()
    await enqueue([Delivery(key=f"b:{n}", channel="telegram", recipient=str(10_000 + n),
                            payload={"text": "x"}, priority=PRIORITY_BULK) for n in range(ROWS)],
                  datetime.now(timezone.utc))
    await store.close()
    double = BotApiDouble()
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    nodes = []
    for n in range(instances):
        env = {"EMIL_DATABASE_URL": URL, "EMIL_HTTP_PORT": str(free_port()),
               "EMIL_SMTP_PORT": str(free_port()), "EMIL_TELEGRAM_TOKEN": "1:BENCH",
               "EMIL_TELEGRAM_API_URL": str(server.make_url("")).rstrip("/"),
               "EMIL_TELEGRAM_MODE": "webhook", "EMIL_TELEGRAM_WEBHOOK_SECRET": "s",
               "EMIL_TELEGRAM_RATE": "100000", "EMIL_TELEGRAM_CHAT_INTERVAL": "0",
               "EMIL_TELEGRAM_SINGLE_SENDER": "false", "EMIL_INSTANCE_NAME": f"node-{n}",
               "EMIL_OUTBOX_POLL_SECONDS": "30",  # idle lanes do not poll during the run
               "EMIL_SENT_MAIL_DIR": str(tmp / "sent")}
        nodes.append((env, await serve(env, tmp / f"node-{instances}-{n}.log")))
    for env, _ in nodes:
        await wait_http(env["EMIL_HTTP_PORT"], timeout=60)
    # the lanes start with the process: time from the first send to the last
    await double.wait_for(ROWS, timeout=300, distinct=True)
    stamps = sorted(s.at for s in double.sent)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    empty = total = 0
    async with aiohttp.ClientSession() as http:
        for env, _ in nodes:
            async with http.get(f"http://127.0.0.1:{env['EMIL_HTTP_PORT']}/metrics") as resp:
                text = await resp.text()
            for outcome, value in re.findall(
                    r'emil_outbox_claims_total\{channel="telegram",outcome="(\w+)"\} ([\d.]+)', text):
                total += int(float(value))
                empty += int(float(value)) if outcome == "empty" else 0
    for _, proc in nodes:
        proc.send_signal(signal.SIGTERM)
    for _, proc in nodes:
        await proc.wait()
    await server.close()
    return rate, len(double.sent) - ROWS, empty, total


async def main() -> None:
    print(f"machine: {machine()}, PostgreSQL at {URL.rpartition('@')[2]}")
    base = None
    with tempdir() as tmp:
        for instances in (1, 2, 3):
            start = time.perf_counter()
            rate, duplicates, empty, claims = await run(instances, Path(tmp))
            base = base or rate
            print(f"{instances} instance(s): {rate:,.0f} msg/s (ratio to 1 instance "
                  f"{rate / base:.2f}), duplicates {duplicates}, empty claims {empty} of "
                  f"{claims} ({empty / max(claims, 1):.1%}), run {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
