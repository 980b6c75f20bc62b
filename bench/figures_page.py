"""The schools' figures page (issue #20) over a school year for 2,000 pupils: 4 schools
of 20 classes of 25, every lesson's attendance entry (6 a day, 185 school days: about
2.2 million rows), 12 grades in each of 10 subjects per pupil (240,000) and 5 remarks
each. A signed-in member of the education office opens `/panel/szkoly` through HTTP,
rendering and six pygal charts included.

The page reads the cells the figures jobs stored (store/figure_cells.py). Printed, each
the median of three rounds (the machine is shared and noisy):
- the counting job (count the year, replace its cells) and the refresh job's look for
  changes when there are none (what it costs every 5 minutes);
- p50/p95 of the page, charts kept for the stored counting (what the office sees);
- p50/p95 of the first opening after a new counting (cells read, six charts drawn);
each page figure with the ratio to a bare aiohttp handler returning a static page of the
same size, measured in the same run.

Run: `python -m bench.figures_page` (SQLite), or with
`EMIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (PostgreSQL).
`PUPILS=500` or `LESSONS=2` make a quicker, smaller run.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from tortoise import connections

from bench.common import bare_page, bench_settings, fresh_database, machine, staff_cookies, tempdir, timed
from gateway import panel_figures
from gateway.app import create_app
from gateway.keys import SERVICES
from handlers import figures
from store.models import Attendance, FigureCell
from store.sql import sql

PUPILS = int(os.environ.get("PUPILS", 2000))
LESSONS = int(os.environ.get("LESSONS", 6))
RUNS = int(os.environ.get("RUNS", 100))
COLD_RUNS = int(os.environ.get("COLD_RUNS", 10))
YEAR = 2025  # 1 September 2025 – 26 June 2026
SUBJECTS = ["polski", "matematyka", "angielski", "historia", "biologia", "geografia",
            "fizyka", "chemia", "informatyka", "wychowanie fizyczne"]
GRADES = ["1", "2", "2+", "3-", "3", "3+", "4-", "4", "4", "4+", "5-", "5", "5", "6", "np"]


def school_days() -> list[date]:
    day, end, days = date(YEAR, 9, 1), date(YEAR + 1, 6, 26), []
    while day <= end:
        if day.weekday() < 5 and not (date(YEAR, 12, 22) <= day <= date(YEAR + 1, 1, 2)):
            days.append(day)
        day += timedelta(days=1)
    return days


async def build(rng: random.Random) -> None:
    db = connections.get("default")
    now = datetime.now(timezone.utc)
    classes = [f"SP{1 + n // 20} {1 + (n % 20) // 3}{'abc'[(n % 20) % 3]}" for n in range(PUPILS // 25)]
    pupils = [(f"U{n:05d}", f"Uczeń {n}", classes[n % len(classes)]) for n in range(PUPILS)]
    async with db._in_transaction() as conn:
        await conn.execute_many(sql(db, "INSERT INTO student (id, name, class_name) VALUES (?,?,?)"),
                                [list(p) for p in pupils])
    attendance = sql(db, "INSERT INTO attendance (id, student_id, date, period, status, subject, "
                         "updated_at) VALUES (?,?,?,?,?,?,?)")
    statuses = ["present"] * 90 + ["absent"] * 5 + ["excused"] * 3 + ["late"] * 2
    started, rows = time.perf_counter(), 0
    for day in school_days():
        batch = [[f"a{pupil}-{day.isoformat()}-{period}", pupil, day, period,
                  rng.choice(statuses), rng.choice(SUBJECTS), now]
                 for pupil, _, _ in pupils for period in range(1, LESSONS + 1)]
        async with db._in_transaction() as conn:
            await conn.execute_many(attendance, batch)
        rows += len(batch)
        if day.day == 1:
            print(f"  attendance to {day}: {rows:,} rows ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    days = school_days()
    grade_sql = sql(db, "INSERT INTO grade (id, student_id, subject, value, weight, recorded_at, "
                        "revision, updated_at) VALUES (?,?,?,?,?,?,?,?)")
    remark_sql = sql(db, "INSERT INTO remark (id, student_id, kind, text, teacher, recorded_at, "
                         "updated_at) VALUES (?,?,?,?,?,?,?)")
    for start in range(0, PUPILS, 200):
        grades, remarks = [], []
        for pupil, _, _ in pupils[start:start + 200]:
            for subject in SUBJECTS:
                for n in range(12):
                    when = datetime.combine(rng.choice(days), datetime.min.time(), timezone.utc
                                            ) + timedelta(hours=9)
                    grades.append([f"g{pupil}-{subject}-{n}", pupil, subject, rng.choice(GRADES),
                                   rng.choice(["1", "1", "2", "3"]), when, 1, now])
            for n in range(5):
                when = datetime.combine(rng.choice(days), datetime.min.time(), timezone.utc)
                remarks.append([f"r{pupil}-{n}", pupil, rng.choice(["positive", "negative",
                                                                    "neutral"]),
                                "Uwaga", "Anna Nowak", when, now])
        async with db._in_transaction() as conn:
            await conn.execute_many(grade_sql, grades)
            await conn.execute_many(remark_sql, remarks)
    await db.execute_script("ANALYZE")
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)


async def seconds(work: Any) -> float:
    began = time.perf_counter()
    await work
    return time.perf_counter() - began


async def main() -> None:
    print(f"machine: {machine()}")
    rng = random.Random(2026)
    with tempdir() as tmp:
        settings = bench_settings(tmp)
        await fresh_database(settings)
        app = create_app(settings, run_workers=False, start_listeners=False)
        async with TestClient(TestServer(app)) as client:
            print(f"building a school year: {PUPILS:,} pupils, {LESSONS} lessons a day, on "
                  f"{settings.database_url.split(':')[0]} …", flush=True)
            await build(rng)
            print(f"rows: {await Attendance.all().count():,} attendance entries")
            services = app[SERVICES]
            cookies = await staff_cookies(app, ["oswiata"], "Oświata")
            path = f"/panel/szkoly?rok={YEAR}"
            console = next(sub for sub in app._subapps if panel_figures.CACHE in sub)
            counting, looking, page, first = [], [], [], []
            for _ in range(3):
                counting.append(await seconds(figures.recompute(
                    YEAR, services.zone, services.clock.now())))
                looking.append(await seconds(figures.refresh_run(services)))
                first.append(await timed(client, path, cookies, COLD_RUNS,
                                         before=console[panel_figures.CACHE].clear))
                page.append(await timed(client, path, cookies, RUNS))
            size = page[-1][2]
            base = [await bare_page(size, RUNS) for _ in range(3)]
            base95 = statistics.median(b[1] for b in base)
            median = statistics.median
            print(f"cells stored: {await FigureCell.filter(year=YEAR).count():,}")
            print(f"counting job (count the year, replace its cells): "
                  f"{median(counting):.1f} s (rounds: {', '.join(f'{c:.1f}' for c in counting)})")
            print(f"refresh job, nothing changed: {median(looking) * 1000:.0f} ms")
            print(f"page size: {size:,} bytes")
            print(f"bare aiohttp page of the same size: p50 {median(b[0] for b in base):.1f} ms, "
                  f"p95 {base95:.1f} ms")
            for title, found in (("figures page, charts kept", page),
                                 (f"figures page, first opening after a counting "
                                  f"({COLD_RUNS} runs)", first)):
                p50, p95 = median(f[0] for f in found), median(f[1] for f in found)
                print(f"{title}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                      f"({'under' if p95 < 300 else 'OVER'} 300 ms), ratio to the bare page "
                      f"{p95 / base95:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
