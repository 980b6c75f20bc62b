"""The end-of-term push: 10,000 grades for 600 students with 1,000 guardians, accepted
through the signed hook (validated, stored, one notice per guardian and student queued),
against a bare `bulk_create` of the same 10,000 grade rows into the same database.

Run: `python -m bench.grades_batch`.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import datetime, timezone

from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from bench.common import bench_settings, machine, report, tempdir
from gateway.app import create_app
from store.models import Grade, Identity, Outbox, Person, Student

SECRET = "whsec_QmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5YWI="
GRADES, STUDENTS, GUARDIANS = 10_000, 600, 1_000


async def roster() -> None:
    now = datetime.now(timezone.utc)
    await Person.bulk_create([Person(name=f"R{n}", roles=["parent"], created_at=now)
                              for n in range(GUARDIANS)])
    people = await Person.all().order_by("id")
    await Identity.bulk_create([Identity(person_id=p.id, channel="email",
                                         address=f"r{i}@example.pl", created_at=now)
                                for i, p in enumerate(people)])
    await Student.bulk_create([Student(id=f"T{n}", name=f"U{n}", class_name="8a")
                               for n in range(STUDENTS)])
    through = "student_guardian"  # the M2M table named in store.models
    from tortoise.connection import get_connection

    pairs = [(f"T{n}", people[n].id) for n in range(STUDENTS)]
    pairs += [(f"T{n}", people[STUDENTS + n].id) for n in range(GUARDIANS - STUDENTS)]
    values = ",".join(f"('{s}',{p})" for s, p in pairs)
    await get_connection("default").execute_script(
        f"INSERT INTO {through} (student_id, person_id) VALUES {values}")


def batch(prefix: str) -> list[dict]:
    return [{"id": f"{prefix}{n}", "student": f"T{n % STUDENTS}", "subject": "Matematyka",
             "value": str(1 + n % 6), "weight": "2", "recorded_at": "2026-06-20T10:00:00+02:00"}
            for n in range(GRADES)]


async def main() -> None:
    print(f"machine: {machine()}")
    with tempdir() as tmp:
        app = create_app(bench_settings(tmp, hook_secret_register=SECRET), run_workers=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        await roster()
        now = datetime.now(timezone.utc)
        start = time.perf_counter()
        await Grade.bulk_create([Grade(id=f"B{n}", student_id=f"T{n % STUDENTS}", subject="M",
                                       value="5", recorded_at=now, updated_at=now)
                                 for n in range(GRADES)], batch_size=1000)
        bare = GRADES / (time.perf_counter() - start)
        body = json.dumps({"grades": batch("G")}).encode()
        headers = {"webhook-id": "end-of-term", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(SECRET).sign("end-of-term", now, body.decode()),
                   "Content-Type": "application/json"}
        start = time.perf_counter()
        resp = await client.post("/hooks/register/grades", data=io.BytesIO(body), headers=headers)
        elapsed = time.perf_counter() - start
        result = await resp.json()
        notices = await Outbox.filter(cause__startswith="grades:").count()
        await client.close()
    print(f"accepted {result['created']} grades in {elapsed:.2f} s, {notices} notifications "
          f"queued (expected {GUARDIANS})")
    report("grades accepted through the hook", GRADES / elapsed, bare, "grades/s")


if __name__ == "__main__":
    asyncio.run(main())
