"""Inbound SMTP into cases vs a bare aiosmtpd sink, over one aiosmtplib connection.

Mail comes from another process over one connection. Ours counts until every message is
a case (stored raw before `250`, parsed, case created, reply queued and written); the sink
answers `250` and forgets. Two lines are printed: the rate at which the sender got its
`250`s (each mail durable by then), and the rate into cases (the issue's figure, target
ratio ≥ 0.5). Run: `python -m bench.smtp_inbound`

`--worker-process` (PostgreSQL only, `EMIL_BENCH_DATABASE_URL`) runs the gateway as
`EMIL_WORKER_PROCESS=true` does: this process takes mail in (SMTP, store, `250`) and the
worker process it starts handles it (inbox, outbox), woken by `NOTIFY`.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import time
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
from aiohttp import web
from aiosmtpd.smtp import SMTP

from bench.common import bench_settings, machine, report, tempdir
from gateway.app import create_app
from gateway.keys import SMTP_PORT
from store.db import is_postgres

COUNT = 1500


def message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"mieszkaniec{n}@example.pl"
    msg["To"] = "sprawy@milanowek.example"
    msg["Subject"] = f"Zgłoszenie nr {n}: uszkodzona ławka"
    msg["Message-ID"] = make_msgid(domain="example.pl")
    msg.set_content("Dzień dobry, w parku przy ul. Kościuszki jest uszkodzona ławka.\n" * 5)
    return msg


def _sender(port: int, count: int, out: multiprocessing.Queue) -> None:
    async def run() -> tuple[float, float]:
        messages = [message(n) for n in range(count)]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30)
        await client.connect()
        start = time.perf_counter()
        for msg in messages:
            await client.send_message(msg)
        elapsed = time.perf_counter() - start
        await client.quit()
        return start, elapsed

    out.put(asyncio.run(run()))


async def send_all(port: int, count: int) -> tuple[float, float]:
    """Send from another process, as a relay would; returns when the first message went
    (`time.perf_counter()`, the system-wide monotonic clock on Linux, so comparable
    across the two processes) and how many seconds the sending took."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_sender, args=(port, count, out))
    proc.start()
    start, elapsed = await asyncio.to_thread(out.get)
    proc.join()
    return start, elapsed


class Sink:
    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


async def baseline(count: int) -> float:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink()), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, elapsed = await send_all(port, count)
    server.close()
    await server.wait_closed()
    return count / elapsed


async def ours(count: int, worker_process: bool = False) -> tuple[float, float]:
    """(acknowledged messages/s as the sender saw them, messages/s into cases)."""
    from store.models import Case

    with tempdir() as tmp:
        app = create_app(bench_settings(tmp, worker_process=worker_process))
        runner = web.AppRunner(app)
        await runner.setup()
        if worker_process:
            await asyncio.sleep(3)  # the worker's start-up (imports, store) is not measured
        start, sending = await send_all(app[SMTP_PORT], count)
        while await Case.all().count() < count:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start  # from the first message, as the sink's
        await runner.cleanup()
    return count / sending, count / elapsed


async def main() -> None:
    print(f"machine: {machine()}")
    split = "--worker-process" in sys.argv[1:]
    if split and not is_postgres(os.environ.get("EMIL_BENCH_DATABASE_URL", "")):
        sys.exit("--worker-process needs EMIL_BENCH_DATABASE_URL=postgres://…")
    base = await baseline(COUNT)
    acknowledged, into_cases = await ours(COUNT, split)
    label = " (intake and handling in two processes)" if split else ""
    report(f"inbound SMTP, stored and acknowledged (250){label}", acknowledged, base,
           "messages/s")
    report(f"inbound SMTP → cases{label}", into_cases, base, "messages/s", 0.5)


if __name__ == "__main__":
    asyncio.run(main())
