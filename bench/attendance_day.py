"""End of a school day: 10,000 attendance entries for 600 students (1,000 guardians)
through the signed hook, gathered and told — exactly one message per guardian and child —
against a bare `bulk_create` of the same 10,000 rows into the same database.

Run: `python -m bench.attendance_day`.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import date, datetime, timedelta, timezone

from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from bench.common import bench_settings, machine, report, tempdir
from bench.grades_batch import GUARDIANS, SECRET, STUDENTS, roster
from gateway.app import create_app
from gateway.jobs import run_job
from gateway.keys import SERVICES
from store.models import Attendance, Outbox

ENTRIES = 10_000
DAY = date(2026, 11, 26)


def entries(prefix: str) -> list[dict]:
    """Eight lessons a day; every student misses the first one, some are late later."""
    statuses = ("absent", "present", "present", "late", "present", "present", "present",
                "present")
    return [{"id": f"{prefix}{n}", "student": f"T{n % STUDENTS}", "date": DAY.isoformat(),
             "period": 1 + (n // STUDENTS) % 8, "status": statuses[(n // STUDENTS) % 8],
             "subject": "matematyka"} for n in range(ENTRIES)]


async def main() -> None:
    print(f"machine: {machine()}")
    with tempdir() as tmp:
        app = create_app(bench_settings(tmp, hook_secret_register=SECRET,
                                        attendance_gather_minutes=10), run_workers=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        await roster()
        now = datetime.now(timezone.utc)
        start = time.perf_counter()
        await Attendance.bulk_create([Attendance(id=f"B{n}", student_id=f"T{n % STUDENTS}",
                                                 date=DAY, period=1, status="present",
                                                 updated_at=now) for n in range(ENTRIES)],
                                     batch_size=1000)
        bare = ENTRIES / (time.perf_counter() - start)
        body = json.dumps({"attendance": entries("A")}).encode()
        headers = {"webhook-id": "end-of-day", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(SECRET).sign("end-of-day", now, body.decode()),
                   "Content-Type": "application/json"}
        start = time.perf_counter()
        resp = await client.post("/hooks/register/attendance", data=io.BytesIO(body),
                                 headers=headers)
        accepted = time.perf_counter() - start
        result = await resp.json()
        services = app[SERVICES]
        services.clock.now = lambda: datetime.now(timezone.utc) + timedelta(minutes=11)
        start = time.perf_counter()
        gathered = await run_job(services, "attendance-gather")
        told = time.perf_counter() - start
        messages = await Outbox.filter(cause__startswith="attendance:").count()
        await client.close()
    print(f"accepted {result['created']} entries in {accepted:.2f} s; after the gathering "
          f"window {gathered['batches']} batches told in {told:.2f} s: {messages} messages "
          f"(expected one per guardian and child: {GUARDIANS})")
    report("attendance accepted through the hook", ENTRIES / accepted, bare, "entries/s")
    report("accepted and told", ENTRIES / (accepted + told), bare, "entries/s")


if __name__ == "__main__":
    asyncio.run(main())
