"""Outbox SMS throughput vs `EMIL_SMS_RATE`, through the real SMS lane (budget kept in the
store before each message, sms/budget.py) to the SMSAPI double over HTTP, which here
refuses (429) any request above the rate in a sliding second — a provider enforcing the
rate we promised it. The baseline, in the same run: the same double hit directly with
aiohttp at the same pacing (a message every 1/rate seconds, nothing else).

Run: `python -m bench.outbox_sms` (target: ours ≥ 0.95 of the configured rate, 0
refusals; median of three runs of each).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from decimal import Decimal

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.common import bench_settings, machine, tempdir
from gateway.keys import CLOCK, DISPATCHER
from store.outbox import PRIORITY_BULK, Delivery, enqueue
from tests.doubles.smsapi import TOKEN, SmsApiDouble

RATE = 10.0
COUNT = 200
RUNS = 3


#: the provider's own limit over the rate we promise it, as Telegram's 30/s is over the
#: Telegram lane's 25/s (bench/outbox_telegram.py): a strict limit at exactly the rate
#: refuses evenly paced traffic whose arrivals jitter by a millisecond (measured: 17 of
#: 200 refused for the bare baseline itself)
PROVIDER_LIMIT = 1.2


class Provider:
    """The double behind a middleware that notes when each message arrived and refuses
    one that would make more than `rate` × PROVIDER_LIMIT in the last second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate * PROVIDER_LIMIT
        self.double = SmsApiDouble()
        self.arrivals: list[float] = []
        self.refused = 0
        self._window: deque[float] = deque()

    def app(self) -> web.Application:
        app = self.double.app()

        @web.middleware
        async def pace(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                       ) -> web.StreamResponse:
            now = time.perf_counter()
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.rate:
                self.refused += 1
                return web.json_response({"error": 429, "message": "Too many requests"},
                                         status=429, headers={"Retry-After": "1"})
            self._window.append(now)
            response = await handler(request)
            self.arrivals.append(now)
            return response

        app.middlewares.append(pace)
        return app

    def achieved(self) -> float:
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])


async def serve(provider: Provider) -> TestServer:
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    return server


async def ours() -> tuple[float, int]:
    """The gateway's SMS lane: rows in the outbox, the dispatcher sends them."""
    from gateway.app import create_app

    provider = Provider(RATE)
    server = await serve(provider)
    try:
        with tempdir() as tmp:
            app = create_app(bench_settings(
                tmp, sms_token=TOKEN, sms_api_url=str(server.make_url("")).rstrip("/"),
                sms_rate=RATE, sms_part_price=Decimal("0.16"),
                sms_monthly_budget=Decimal("1000")))
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                # 90 % a broadcast to distinct numbers, 10 % a second message to a number
                # already used (held a second by the per-number spacing)
                rows = [Delivery(key=f"b:{n}", channel="sms", recipient=f"+48500{n:06d}",
                                 payload={"text": f"Ogłoszenie {n}: zebranie w czwartek."},
                                 priority=PRIORITY_BULK) for n in range(int(COUNT * 0.9))]
                rows += [Delivery(key=f"r:{n}", channel="sms", recipient=f"+48500{n:06d}",
                                  payload={"text": f"Druga wiadomość {n}"})
                         for n in range(COUNT - len(rows))]
                await enqueue(rows, app[CLOCK].now())
                app[DISPATCHER].notify()
                deadline = time.perf_counter() + COUNT / RATE * 3
                while len(provider.double.sent) < COUNT and time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                await runner.cleanup()
    finally:
        await server.close()
    assert len(provider.double.sent) == COUNT, f"{len(provider.double.sent)} of {COUNT} sent"
    return provider.achieved(), provider.refused


async def baseline() -> tuple[float, int]:
    """The double hit directly: one POST every 1/rate seconds on an exact schedule."""
    provider = Provider(RATE)
    server = await serve(provider)
    url = str(server.make_url("/sms.do"))
    try:
        async with aiohttp.ClientSession() as session:
            async def post(n: int) -> None:
                async with session.post(url, data={
                        "to": f"48500{n:06d}", "message": f"Ogłoszenie {n}: zebranie w czwartek.",
                        "format": "json", "encoding": "utf-8", "idx": str(n)},
                        headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    await resp.read()

            start, sends = time.perf_counter(), []
            for n in range(COUNT):
                wait = start + n / RATE - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                sends.append(asyncio.create_task(post(n)))
            await asyncio.gather(*sends)
    finally:
        await server.close()
    return provider.achieved(), provider.refused


async def main() -> None:
    print(f"machine: {machine()}")
    figures: dict[str, list[tuple[float, int]]] = {"ours": [], "baseline": []}
    for run in range(RUNS):
        figures["baseline"].append(await baseline())
        figures["ours"].append(await ours())
        print(f"run {run + 1}: baseline {figures['baseline'][-1][0]:.3f} msg/s, "
              f"ours {figures['ours'][-1][0]:.3f} msg/s, refusals "
              f"{figures['baseline'][-1][1]} / {figures['ours'][-1][1]}")
    base = statistics.median(rate for rate, _ in figures["baseline"])
    achieved = statistics.median(rate for rate, _ in figures["ours"])
    refused = sum(n for _, n in figures["ours"])
    print(f"outbox → SMS: {COUNT} messages a run, median of {RUNS}: achieved {achieved:.2f} msg/s, "
          f"configured {RATE:.0f} msg/s, ratio {achieved / RATE:.3f} (target ≥ 0.95); "
          f"baseline {base:.2f} msg/s, ours/baseline {achieved / base:.3f}; "
          f"provider refusals {refused} (target 0)")


if __name__ == "__main__":
    asyncio.run(main())
