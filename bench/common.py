"""Shared pieces for the benchmarks: a temporary gateway, a load client, a report line.

Every benchmark measures a bare baseline in the same run and prints our figure as a
ratio of it, so the number means the same on any machine. No thresholds live in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from gateway.config import Settings
from tests.doubles.botapi import BotApiDouble


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def bench_settings(tmp: str, **overrides: Any) -> Settings:
    database_url = os.environ.get("EMIL_BENCH_DATABASE_URL", f"sqlite://{tmp}/bench.db")
    return Settings(_env_file=None, database_url=database_url, smtp_port=0,  # type: ignore[call-arg]
                    sent_mail_dir=f"{tmp}/sent", admin_token="bench-admin", **overrides)


def report(title: str, ours: float, baseline: float, unit: str, target: float | None = None
           ) -> None:
    ratio = ours / baseline if baseline else 0.0
    verdict = "" if target is None else ("  (target ≥ %.2f: %s)" % (target, "met" if ratio >= target else "NOT met"))
    print(f"{title}: ours {ours:,.0f} {unit}, baseline {baseline:,.0f} {unit}, "
          f"ratio {ratio:.2f}{verdict}")


def _client(url: str, body: bytes, headers: dict[str, str], total: int, concurrency: int,
            queue: multiprocessing.Queue, sign: str | None = None) -> None:
    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            counter = itertools.count(1)
            failures = 0
            # webhook ids unique to this run: a second run reusing `bench-1…` would be
            # answered as replays, never applied, and measure nothing but the replay check
            run = uuid.uuid4().hex[:8]

            async def worker(n: int) -> None:
                nonlocal failures
                for _ in range(n):
                    n = next(counter)
                    data = body.replace(b"{n}", str(n).encode())
                    if sign:  # Standard Webhooks: each request signed as the register would
                        stamp = datetime.now(timezone.utc)
                        hook_id = f"bench-{run}-{n}"
                        signed = {"webhook-id": hook_id,
                                  "webhook-timestamp": str(int(stamp.timestamp())),
                                  "webhook-signature": Webhook(sign).sign(
                                      hook_id, stamp, data.decode())}
                        request_headers = {**headers, **signed}
                    else:
                        request_headers = headers
                    async with session.post(url, data=data, headers=request_headers) as resp:
                        await resp.read()
                        if resp.status >= 300:
                            failures += 1

            start = time.perf_counter()
            per = total // concurrency
            await asyncio.gather(*(worker(per) for _ in range(concurrency)))
            queue.put((per * concurrency / (time.perf_counter() - start), failures))

    asyncio.run(main())


def load(url: str, body: bytes, headers: dict[str, str], total: int = 4000,
         concurrency: int = 64, sign: str | None = None) -> tuple[float, int]:
    """POST `total` requests from another process; returns (requests/s, failures).
    `{n}` in the body is replaced with a unique number per request; with `sign` (a
    `whsec_` secret) each request is signed the Standard Webhooks way."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_client, args=(url, body, headers, total, concurrency,
                                                         queue, sign))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def tempdir() -> tempfile.TemporaryDirectory:
    """Scratch space under `var/`, where the gateway keeps its data when deployed (the
    database, `var/sent-mail/`). Not the system temp folder: on the machine the README's
    figures come from, creating a file in /tmp cost ~1.3 ms against ~0.2 ms under the
    project, which measured the sandbox rather than the gateway."""
    Path("var").mkdir(exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="emil-bench-", dir="var")


async def fresh_database(settings: Settings) -> None:
    """PostgreSQL: an empty `public` schema, so that a run starts from nothing (a SQLite
    file in the run's scratch folder is new anyway)."""
    if settings.database_url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(settings.database_url.replace("postgres://",
                                                                   "postgresql://", 1))
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()


async def staff_cookies(app: web.Application, units: list[str], name: str = "Bench") -> dict[str, str]:
    """A signed-in console session of a new staff member of `units`, as its cookie."""
    from gateway.keys import SERVICES
    from handlers import staff
    from store.models import Person

    person = await Person.create(name=name, roles=["staff"], units=units)
    token, _ = await staff.start_session(person, app[SERVICES].clock.now())
    return {"panel-sesja": token}


async def timed(client: TestClient, path: str, cookies: dict[str, str], runs: int,
                before: Any = None) -> tuple[float, float, int]:
    """GET `path` `runs` times, one after another: (p50 ms, p95 ms, size of the last
    answer in bytes). `before`, if given, is called before each request."""
    timings, size = [], 0
    for _ in range(runs):
        if callable(before):
            before()
        began = time.perf_counter()
        async with client.get(path, cookies=cookies, allow_redirects=False) as resp:
            size = len(await resp.read())
            assert resp.status == 200, (path, resp.status)
        timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    return statistics.median(timings), timings[max(0, int(len(timings) * 0.95) - 1)], size


async def bare_page(size: int, runs: int) -> tuple[float, float]:
    """p50 and p95 of a bare aiohttp handler answering a static page of `size` bytes:
    the baseline of the page benchmarks."""
    body = "<!doctype html><title>x</title><p>" + "x" * max(0, size - 33)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    async with TestClient(TestServer(app)) as client:
        p50, p95, _ = await timed(client, "/", {}, runs)
        return p50, p95


@contextlib.asynccontextmanager
async def telegram_gateway(rate: float, **overrides: Any
                           ) -> AsyncIterator[tuple[BotApiDouble, web.Application]]:
    """A running gateway (webhook mode, scratch folder) whose Telegram lane sends at `rate`
    to the Bot API double enforcing Telegram's limits: 30/s overall, one per second per
    chat, 429 on a breach. Yields (double, app)."""
    from gateway.app import create_app

    double = BotApiDouble(enforce_overall=30, enforce_per_chat=1)
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    try:
        with tempdir() as tmp:
            app = create_app(bench_settings(
                tmp, telegram_token="1:BENCH", telegram_rate=rate,
                telegram_api_url=str(server.make_url("")).rstrip("/"),
                telegram_mode="webhook", telegram_webhook_secret="s", **overrides))
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                yield double, app
            finally:
                await runner.cleanup()
    finally:
        await server.close()


__all__ = ["Path", "bare_page", "bench_settings", "fresh_database", "load", "machine", "report",
           "staff_cookies", "telegram_gateway", "tempdir", "timed"]
