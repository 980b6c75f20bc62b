"""Every signed hook keeps up (#12): 64 concurrent connections, one record per request,
each durable before it answers, against a bare aiohttp handler (`POST → 204`) in the
same run. The register's grades and attendance feeds and the library's loans.

Run: `python -m bench.hook_feeds` (target ratio ≥ 0.25).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bench.common import bench_settings, load, machine, report, tempdir
from bench.hook_endpoints import bare_baseline, serve
from gateway.app import create_app

SECRET = "whsec_QmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5YWI="
TOTAL = 3000
FEEDS = {
    "grades": b'{"grades": [{"id": "G{n}", "student": "S1", "subject": "Matematyka", '
              b'"value": "5", "recorded_at": "2026-11-26T10:00:00+01:00"}]}',
    "attendance": b'{"attendance": [{"id": "A{n}", "student": "S1", "date": "2026-11-26", '
                  b'"period": 1, "status": "present"}]}',
}


async def main() -> None:
    print(f"machine: {machine()}")
    baseline = await bare_baseline(18911)
    with tempdir() as tmp:
        settings = bench_settings(tmp, http_port=18912, hook_secret_register=SECRET,
                                  hook_secret_library=SECRET)
        app = create_app(settings)
        runner: web.AppRunner = await serve(app, 18912)
        from store.models import Student

        await Student.create(id="S1", name="Uczeń", class_name="1a")
        for feed, body in FEEDS.items():
            rate, failed = await asyncio.to_thread(
                load, f"http://127.0.0.1:18912/hooks/register/{feed}", body,
                {"Content-Type": "application/json"}, TOTAL, 64, SECRET)
            report(f"POST /hooks/register/{feed}", rate, baseline, "req/s", 0.25)
            if failed:
                print(f"  failed requests: {failed}")
        loans = (b'{"loans": [{"id": "L{n}", "card": "K1", "title": "Lalka", "due": "2026-12-01"}]}')
        rate, failed = await asyncio.to_thread(
            load, "http://127.0.0.1:18912/hooks/library/loans", loans,
            {"Content-Type": "application/json"}, TOTAL, 64, SECRET)
        report("POST /hooks/library/loans", rate, baseline, "req/s", 0.25)
        if failed:
            print(f"  failed requests: {failed}")
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
