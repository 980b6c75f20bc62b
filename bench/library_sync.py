"""A sync of 20,000 loans for 5,000 readers through the signed hook, then a reminder run
over them, against a bare `bulk_create` of the same loan rows into the same database.

Run: `python -m bench.library_sync`.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from datetime import datetime, timedelta, timezone

from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from bench.common import bench_settings, machine, report, tempdir
from gateway.app import create_app
from gateway.jobs import run_job
from gateway.keys import SERVICES
from store.models import Identity, Loan, Person

SECRET = "whsec_QmVuY2htYXJrLXNlY3JldC0wMTIzNDU2Nzg5YWI="
LOANS, READERS = 20_000, 5_000


async def main() -> None:
    print(f"machine: {machine()}")
    with tempdir() as tmp:
        app = create_app(bench_settings(tmp, hook_secret_library=SECRET), run_workers=False)
        client = TestClient(TestServer(app))
        await client.start_server()
        now = datetime.now(timezone.utc)
        await Person.bulk_create([Person(name=f"C{n}", library_card=f"K{n}", created_at=now)
                                  for n in range(READERS)], batch_size=1000)
        people = await Person.all().order_by("id")
        await Identity.bulk_create([Identity(person_id=p.id, channel="email",
                                             address=f"c{i}@example.pl", created_at=now)
                                    for i, p in enumerate(people)], batch_size=1000)
        today = now.astimezone(app[SERVICES].zone).date()
        # due dates spread over five weeks around today: every reminder level occurs
        dues = [today + timedelta(days=(n % 35) - 20) for n in range(LOANS)]
        start = time.perf_counter()
        await Loan.bulk_create([Loan(id=f"B{n}", card=f"K{n % READERS}", title="T", due=dues[n],
                                     updated_at=now) for n in range(LOANS)], batch_size=1000)
        bare = LOANS / (time.perf_counter() - start)
        body = json.dumps({"loans": [
            {"id": f"L{n}", "card": f"K{n % READERS}", "title": f"Książka {n}",
             "due": dues[n].isoformat(), "renewals": 0, "max_renewals": 2, "reserved": False,
             "returned": False} for n in range(LOANS)]}).encode()
        headers = {"webhook-id": "sync", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(SECRET).sign("sync", now, body.decode()),
                   "Content-Type": "application/json"}
        await Loan.filter(id__startswith="B").delete()
        start = time.perf_counter()
        resp = await client.post("/hooks/library/loans", data=io.BytesIO(body), headers=headers)
        synced = LOANS / (time.perf_counter() - start)
        assert (await resp.json())["created"] == LOANS
        start = time.perf_counter()
        summary = await run_job(app[SERVICES], "overdue-reminders")
        run_seconds = time.perf_counter() - start
        await client.close()
    report("loans synced through the hook", synced, bare, "loans/s")
    print(f"reminder run: {summary['messages']} messages for {summary['loans']} loans in "
          f"{run_seconds:.2f} s = {summary['loans'] / run_seconds:,.0f} reminders/s "
          f"(ratio to the bare insert {summary['loans'] / run_seconds / bare:.2f})")


if __name__ == "__main__":
    asyncio.run(main())
