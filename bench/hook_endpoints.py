"""`POST /api/v1/cases` and `POST /telegram/webhook`, each durable before it answers,
against a bare aiohttp handler (`POST → 204`), requests/s from a client in another process.

Run: `python -m bench.hook_endpoints` (target ratio ≥ 0.25).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from bench.common import bench_settings, load, machine, report, tempdir
from gateway.app import create_app

TOTAL = 6000


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def bare_baseline(port: int) -> float:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/", handler)
    runner = await serve(app, port)
    rate, _ = await asyncio.to_thread(load, f"http://127.0.0.1:{port}/", b"{}", {}, TOTAL)
    await runner.cleanup()
    return rate


async def main() -> None:
    print(f"machine: {machine()}")
    baseline = await bare_baseline(18901)
    with tempdir() as tmp:
        settings = bench_settings(tmp, telegram_mode="webhook", telegram_webhook_secret="s",
                                  http_port=18902)
        app = create_app(settings)
        runner = await serve(app, 18902)
        case = json.dumps({"subject": "Ławka {n}", "body": "Zgłoszenie z testu obciążenia"}).encode()
        # as the town's web form backend sends them: with a `cases` key (anonymous callers
        # are rate limited per address, and this client is one address)
        cases, failed = await asyncio.to_thread(
            load, "http://127.0.0.1:18902/api/v1/cases", case,
            {"Content-Type": "application/json", "Authorization": "Bearer bench-admin"}, TOTAL)
        report("POST /api/v1/cases", cases, baseline, "req/s", 0.25)
        update = (b'{"update_id": {n}, "message": {"message_id": 1, "date": 1, "chat": '
                  b'{"id": 5, "type": "private"}, "text": "hej"}}')
        updates, failed2 = await asyncio.to_thread(
            load, "http://127.0.0.1:18902/telegram/webhook", update,
            {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s"}, TOTAL)
        report("POST /telegram/webhook", updates, baseline, "req/s", 0.25)
        await runner.cleanup()
        if failed or failed2:
            print(f"failed requests: cases {failed}, webhook {failed2}")


if __name__ == "__main__":
    asyncio.run(main())
