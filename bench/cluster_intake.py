"""The intakes with 1, 2 and 3 `serve` instances on one PostgreSQL (issue #21): requests/s
of `POST /api/v1/cases`, `POST /telegram/webhook` and a signed hook (grades, one record
per request), the load spread evenly over the instances, and the ratio of each count of
instances to one instance. Each instance is a real process (`python -m gateway serve`), so
the figures include what a second process costs and gains: a second core, and the
database's locks shared between them.

The load comes from one client process per instance (64 connections in all); on a machine
with fewer cores than instances plus clients, the instances compete with the clients and
with PostgreSQL for the CPU, which the printed machine line lets a reader see.

Run: `python -m bench.cluster_intake` (needs PostgreSQL; `EMIL_BENCH_DATABASE_URL`, default
`postgres://postgres@127.0.0.1:5432/emil_bench`, created if missing and emptied each run).
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from aiohttp.test_utils import TestServer

from bench.cluster_outbox import URL, fresh_database
from bench.common import load, machine, tempdir
from bench.hook_feeds import FEEDS, SECRET
from tests.doubles.botapi import BotApiDouble
from tests.test_process import free_port, serve, wait_http

TOTAL = 6000  # requests per door and run, split over the instances
CONNECTIONS = 64
CASE = json.dumps({"subject": "Ławka {n}", "body": "Zgłoszenie z testu obciążenia"}).encode()
UPDATE = (b'{"update_id": {n}, "message": {"message_id": 1, "date": 1, "chat": '
          b'{"id": 5, "type": "private"}, "text": "hej"}}')
#: (door, path, body, headers, signed); `{n}` counts from 1 in every client process, so each
#: process's records carry their own prefix (`door_rate`)
DOORS = (
    ("POST /api/v1/cases", "/api/v1/cases", CASE,
     {"Content-Type": "application/json", "Authorization": "Bearer bench-admin"}, False),
    ("POST /telegram/webhook", "/telegram/webhook", UPDATE,
     {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "s"}, False),
    ("POST /hooks/register/grades", "/hooks/register/grades",
     FEEDS["/hooks/register/grades"], {"Content-Type": "application/json"}, True),
)


def _update_body(client: int, run: int) -> bytes:
    """An update whose id is unique to one client process of one run: ids are integers,
    so the client and run are written as the number's leading digits."""
    return UPDATE.replace(b"{n}", f"{client}{run}0{{n}}".encode())


async def start(instances: int, tmp: Path, botapi: str
                ) -> list[tuple[dict[str, str], asyncio.subprocess.Process]]:
    await fresh_database()
    nodes = []
    for n in range(instances):
        env = {"EMIL_DATABASE_URL": URL, "EMIL_HTTP_PORT": str(free_port()),
               "EMIL_SMTP_PORT": str(free_port()), "EMIL_ADMIN_TOKEN": "bench-admin",
               "EMIL_TELEGRAM_TOKEN": "1:BENCH", "EMIL_TELEGRAM_MODE": "webhook",
               "EMIL_TELEGRAM_WEBHOOK_SECRET": "s",
               # the answers go out at the default pace, beside the intake
               "EMIL_TELEGRAM_API_URL": botapi,
               "EMIL_HOOK_SECRET_REGISTER": SECRET, "EMIL_INSTANCE_NAME": f"node-{n}",
               "EMIL_SENT_MAIL_DIR": str(tmp / "sent")}
        nodes.append((env, await serve(env, tmp / f"node-{instances}-{n}.log")))
    for env, _ in nodes:
        await wait_http(env["EMIL_HTTP_PORT"], timeout=90)
    conn = await asyncpg.connect(URL.replace("postgres://", "postgresql://"))
    try:  # the hook's pupil, without guardians: the store is measured, not the outbox
        await conn.execute("INSERT INTO student (id, name, class_name) "
                           "VALUES ('S1', 'Uczeń', '1a') ON CONFLICT DO NOTHING")
    except asyncpg.PostgresError as exc:  # the table's shape changed: say so, go on
        print(f"  (could not add the hook's pupil: {exc})", file=sys.stderr)
    finally:
        await conn.close()
    return nodes


async def door_rate(nodes: list, path: str, body: bytes, headers: dict[str, str],
                    signed: bool, run: int) -> tuple[float, int]:
    """All instances loaded at once, one client process each; the sum of their rates."""
    per = TOTAL // len(nodes)
    jobs = []
    for client, (env, _) in enumerate(nodes):
        data = (_update_body(client + 1, run) if b"update_id" in body
                else body.replace(b"{n}", f"c{client}r{run}-{{n}}".encode()))
        jobs.append(asyncio.to_thread(
            load, f"http://127.0.0.1:{env['EMIL_HTTP_PORT']}{path}", data, headers, per,
            max(CONNECTIONS // len(nodes), 1), SECRET if signed else None))
    results = await asyncio.gather(*jobs)
    return sum(rate for rate, _ in results), sum(failed for _, failed in results)


async def stop(nodes: list) -> None:
    for _, proc in nodes:
        proc.send_signal(signal.SIGTERM)
    for _, proc in nodes:
        await proc.wait()


async def main() -> None:
    print(f"machine: {machine()}, PostgreSQL at {URL.rpartition('@')[2]}")
    one: dict[str, float] = {}
    double = BotApiDouble()
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    botapi = str(server.make_url("")).rstrip("/")
    with tempdir() as tmp:
        for instances in (1, 2, 3):
            nodes = await start(instances, Path(tmp), botapi)
            try:
                for door, path, body, headers, signed in DOORS:
                    runs = [await door_rate(nodes, path, body, headers, signed, run)
                            for run in range(3)]
                    rate = statistics.median(r for r, _ in runs)
                    failed = sum(f for _, f in runs)
                    one.setdefault(door, rate)
                    print(f"{instances} instance(s) {door}: {rate:,.0f} req/s (median of 3), "
                          f"ratio to 1 instance {rate / one[door]:.2f}"
                          + (f", failed {failed}" if failed else ""))
            finally:
                await stop(nodes)
            time.sleep(1)
    await server.close()


if __name__ == "__main__":
    asyncio.run(main())
