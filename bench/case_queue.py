"""The console with a town's worth of history: 100,000 cases and 1,000,000 correspondence
rows (every one also in the full-text index). A signed-in clerk opens the case queue
(open cases, newest activity first), a filtered queue, and searches for a word from the
correspondence — each through HTTP, page rendering included — and the figures are the
50th and 95th percentile in ms, with the ratio to a bare aiohttp page measured in the
same run.

Run: `python -m bench.case_queue` (SQLite), or with
`EMIL_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test` (PostgreSQL).
`CASES=10000` makes a quicker, smaller run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import datetime, timedelta, timezone

from aiohttp.test_utils import TestClient, TestServer
from tortoise import connections

from bench.common import bare_page, bench_settings, fresh_database, machine, staff_cookies, tempdir, timed
from gateway.app import create_app
from store import search
from store.models import Case, CaseEvent
from store.sql import sql

CASES = int(os.environ.get("CASES", 100_000))
EVENTS_PER_CASE = 10
RUNS = 200
START = datetime(2021, 1, 1, tzinfo=timezone.utc)
STREETS = ["Kościuszki", "Królewska", "Warszawska", "Piłsudskiego", "Brwinowska", "Żabie Oczko",
           "Literacka", "Wojska Polskiego", "Grudowska", "Spacerowa"]
TOPICS = ["dziura w drodze", "oświetlenie uliczne", "wywóz śmieci", "wycinka drzewa",
          "zaświadczenie o zameldowaniu", "podatek od nieruchomości", "hałas w nocy",
          "zalany chodnik", "dzikie wysypisko", "przystanek autobusowy"]
WORDS = ("proszę uprzejmie o informację czy sprawa została już rozpatrzona dziękuję za "
         "odpowiedź w załączeniu przesyłam zdjęcie sytuacja powtarza się od tygodnia "
         "mieszkańcy ulicy zgłaszają problem urząd miasta wydział inwestycji").split()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


async def build(rng: random.Random) -> str:
    """Bulk-insert the cases, their events and the search index; returns a rare word."""
    db = connections.get("default")
    statuses = ["received", "in_progress", "waiting", "resolved", "resolved", "resolved",
                "rejected"]
    channels = ["email", "email", "telegram", "api", "web"]
    case_sql = sql(db, 'INSERT INTO "case" (number, subject, body, category, status, '
                       "access_code_hash, origin_channel, last_channel, "
                       "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)")
    contact_sql = sql(db, "INSERT INTO case_contact (case_id, channel, address) VALUES (?,?,?)")
    event_sql = sql(db, "INSERT INTO case_event (case_id, kind, status, text, public, channel, "
                        "created_at) VALUES (?,?,?,?,?,?,?)")
    rare = "wierzbowa"  # in one case in a thousand
    started = time.perf_counter()
    for start in range(0, CASES, 2000):
        cases, events, contacts, texts = [], [], [], []
        for n in range(start, min(CASES, start + 2000)):
            number = f"UM-{2021 + n * 5 // CASES}-{n + 1:06d}"
            created = START + timedelta(minutes=n * 25)
            subject = f"{rng.choice(TOPICS).capitalize()} przy ul. {rng.choice(STREETS)}"
            body = text(rng, 40) + (f" ulica {rare}" if n % 1000 == 7 else "")
            cases.append([number, subject, body, None, rng.choice(statuses), "x" * 64,
                          rng.choice(channels), "email", created,
                          created + timedelta(days=rng.randint(0, 60))])
            contacts.append([number, "email", f"mieszkaniec{n % 9000}@example.org"])
            texts += [(number, subject), (number, body)]
            for e in range(EVENTS_PER_CASE):
                words = text(rng, 25)
                events.append([number, "message" if e % 2 == 0 else "note", None, words,
                               True, "email", created + timedelta(hours=e)])
                texts.append((number, words))
        async with db._in_transaction() as conn:
            await conn.execute_many(case_sql, cases)
            await conn.execute_many(event_sql, events)
            await conn.execute_many(contact_sql, contacts)
        await search.index(texts)
        done = min(CASES, start + 2000)
        if done % 20_000 == 0:
            print(f"  built {done:,} cases, {done * EVENTS_PER_CASE:,} events "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    if db.capabilities.dialect == "postgres":
        await db.execute_script("ANALYZE")
    else:
        await db.execute_script("ANALYZE")
    return rare


async def main() -> None:
    print(f"machine: {machine()}")
    rng = random.Random(2026)
    with tempdir() as tmp:
        settings = bench_settings(tmp)
        await fresh_database(settings)
        app = create_app(settings, run_workers=False, start_listeners=False)
        async with TestClient(TestServer(app)) as client:
            print(f"building {CASES:,} cases and {CASES * EVENTS_PER_CASE:,} events on "
                  f"{settings.database_url.split(':')[0]} …", flush=True)
            rare = await build(rng)
            cookies = await staff_cookies(app, ["urzad"], "Urzędniczka")
            assert await Case.all().count() == CASES
            print(f"rows: {await Case.all().count():,} cases, "
                  f"{await CaseEvent.all().count():,} events")
            base50, base95 = await bare_page(len("<!doctype html><title>x</title><p>ok"), RUNS)
            print(f"bare aiohttp page: p50 {base50:.1f} ms, p95 {base95:.1f} ms")
            for title, path in (
                    ("queue, open cases", "/panel/sprawy?status=open"),
                    ("queue, everything", "/panel/sprawy"),
                    ("queue, e-mail, older than 30 days", "/panel/sprawy?kanal=email&wiek=30"),
                    ("search, a rare word", f"/panel/sprawy?szukaj={rare}"),
                    ("search, two words no diacritics", "/panel/sprawy?szukaj=kosciuszki+dziura"),
                    ("search, a common word", "/panel/sprawy?szukaj=urzad"),
                    ("one case page", "/panel/sprawy/UM-2025-099999"
                     if CASES == 100_000 else "/panel/sprawy/UM-2021-000001")):
                p50, p95, _ = await timed(client, path, cookies, RUNS)
                print(f"{title}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                      f"({'under' if p95 < 200 else 'OVER'} 200 ms), "
                      f"ratio to the bare page {p95 / base95:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
