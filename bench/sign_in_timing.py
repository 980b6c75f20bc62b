"""Does the console's sign-in form answer a staff address faster or slower than any other?
(issue #18, fault 6: 11.9 ms against 5.6 ms told who is staff.)

A running gateway with its workers (the sign-in worker and the outbox write the mail as
files), RUNS staff members and RUNS unknown addresses; the form is posted for them in
turns (in random order), each staff address once (so each staff request is the one that creates a link and
queues a mail — the slowest case), and the latency of every answer is recorded. Prints
both medians and their ratio; 1.00 means the answer says nothing. Rate limits are off for
the run: they answer alike for every address and would only stop the measurement.

Run: `python -m bench.sign_in_timing` (SQLite), or with
`EMIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import time

from aiohttp.test_utils import TestClient, TestServer

from bench.common import bench_settings, machine, tempdir
from gateway.app import create_app
from gateway.keys import SERVICES
from store.models import Identity, Person

RUNS = int(os.environ.get("RUNS", 300))


async def main() -> None:
    with tempdir() as tmp:
        app = create_app(bench_settings(tmp), start_listeners=False)
        async with TestClient(TestServer(app)) as client:
            app[SERVICES].limits = None  # type: ignore[assignment]
            for n in range(RUNS):
                person = await Person.create(name=f"Pracownik {n}", roles=["staff"],
                                             units=["urzad"])
                await Identity.create(person=person, channel="email",
                                      address=f"pracownik{n}@milanowek.example")
            html = await (await client.get("/panel/wejscie")).text()
            found = re.search(r'name="csrf" value="([^"]*)"', html)
            assert found
            csrf = found.group(1)
            times: dict[str, list[float]] = {"staff": [], "unknown": []}
            rng = random.Random(18)
            for n in range(RUNS):
                pair = [("staff", f"pracownik{n}@milanowek.example"),
                        ("unknown", f"nikt{n}@example.org")]
                rng.shuffle(pair)  # neither kind always follows the other
                for kind, email in pair:
                    started = time.perf_counter()
                    resp = await client.post("/panel/wejscie",
                                             data={"email": email, "csrf": csrf})
                    await resp.read()
                    times[kind].append((time.perf_counter() - started) * 1000)
                    assert resp.status == 200, resp.status
                await asyncio.sleep(0.005)  # let the workers run between pairs, as in life
            staff, unknown = (statistics.median(times[k]) for k in ("staff", "unknown"))
            print(f"sign-in form, {RUNS} requests each ({machine()}): staff address median "
                  f"{staff:.2f} ms, unknown address median {unknown:.2f} ms, "
                  f"ratio {staff / unknown:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
