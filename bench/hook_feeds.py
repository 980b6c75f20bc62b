"""Every signed hook keeps up (#12): 64 concurrent connections, one record per request,
each durable before it answers, against a bare aiohttp handler (`POST → 204`) in the
same run: the register's five feeds and the library's loans.

Each ratio is against the mean of the bare handler measured just before and just after
that feed's run. Run: `python -m bench.hook_feeds` (target ratio ≥ 0.25).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bench.common import bench_settings, load, machine, report, tempdir
from bench.hook_endpoints import bare_baseline, serve
from gateway.app import create_app

SECRET = "whsec_QmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5YWI="
TOTAL = 3000
#: path → a body of one record; `{n}` makes each request's record new. Student S1 (class
#: 1a) exists and has no guardians, so what is measured is the store, not the outbox.
FEEDS = {
    "/hooks/register/grades":
        b'{"grades": [{"id": "G{n}", "student": "S1", "subject": "Matematyka", '
        b'"value": "5", "recorded_at": "2026-11-26T10:00:00+01:00"}]}',
    "/hooks/register/attendance":
        b'{"attendance": [{"id": "A{n}", "student": "S1", "date": "2026-11-26", '
        b'"period": 1, "status": "absent"}]}',
    "/hooks/register/remarks":
        b'{"remarks": [{"id": "R{n}", "student": "S1", "kind": "positive", "text": "Pomoc", '
        b'"teacher": "J. Nowak", "recorded_at": "2026-11-26T10:00:00+01:00"}]}',
    "/hooks/register/homework":
        b'{"homework": [{"id": "H{n}", "class": "1a", "subject": "Matematyka", '
        b'"kind": "test", "title": "Ulamki", "due": "2026-12-04"}]}',
    "/hooks/register/messages":
        b'{"messages": [{"id": "M{n}", "student": "S1", "title": "Wycieczka", '
        b'"body": "Zbiorka o 8:00", "sender": "Wychowawczyni"}]}',
    "/hooks/library/loans":
        b'{"loans": [{"id": "L{n}", "card": "K1", "title": "Lalka", "due": "2026-12-01"}]}',
}


async def main() -> None:
    print(f"machine: {machine()}")
    with tempdir() as tmp:
        settings = bench_settings(tmp, http_port=18912, hook_secret_register=SECRET,
                                  hook_secret_library=SECRET)
        app = create_app(settings)
        runner: web.AppRunner = await serve(app, 18912)
        from store.models import Student

        await Student.create(id="S1", name="Uczeń", class_name="1a")
        before = await bare_baseline(18911)
        for path, body in FEEDS.items():
            rate, failed = await asyncio.to_thread(
                load, f"http://127.0.0.1:18912{path}", body,
                {"Content-Type": "application/json"}, TOTAL, 64, SECRET)
            # the bare handler measured right before and right after this feed: this
            # machine's speed drifts by a factor of two within minutes (other tenants), and
            # one baseline at the start made the ratios of later feeds swing with it
            after = await bare_baseline(18911)
            report(f"POST {path}", rate, (before + after) / 2, "req/s", 0.25)
            if failed:
                print(f"  failed requests: {failed}")
            before = after
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
