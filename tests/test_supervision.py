"""Issue #11, "a database hiccup stops the gateway silently": every background part
survives a store outage, /healthz tells the truth meanwhile, and nothing acknowledged is
lost. The gateway runs with its real workers here (no manual draining)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.keys import HEALTH
from store.models import Case
from store.outbox import Delivery, enqueue
from tests.conftest import PG_URL, WEBHOOK_SECRET, Gateway, make_mail
from tests.doubles.botapi import message_update


async def eventually(check, timeout: float = 40.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `check()` until it is truthy (an outcome to wait for, not a timing threshold)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the expected state was never reached")
        await asyncio.sleep(every)


@pytest.fixture
async def live(aiohttp_client, settings: Settings, botapi, clock) -> Gateway:
    fast = settings.model_copy(update={"outbox_poll_seconds": 0.05, "batch_linger_ms": 0})
    app = create_app(fast, clock=clock, run_workers=True)
    client = await aiohttp_client(app)
    return Gateway(client, fast, botapi, clock)


def hold_sqlite_lock(path: str, seconds: float) -> threading.Thread:
    """Another writer (a long CSV import, the retention job) holding SQLite's write lock
    for longer than the busy timeout (5 s, sqlite3's default)."""
    started = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        started.set()
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    started.wait(10)
    return thread


async def answered(gw: Gateway, chat: int, body: str) -> bool:
    """A reply to the mail whose text was `body`, and a reply in `chat`."""
    cases = await Case.filter(body=body).values_list("number", flat=True)
    mails = [m for m in gw.sent_mail() if cases and cases[0] in str(m["Subject"])]
    return bool(mails) and bool(gw.botapi.texts_to(chat))


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's write lock")
async def test_a_held_sqlite_lock_pauses_the_gateway_and_it_goes_on_by_itself(
        live: Gateway, tmp_path: Path) -> None:
    gw = live
    resp = await gw.client.get("/healthz")
    assert resp.status == 200, await resp.text()
    # notices fall due while the store is locked (the clock moves past them)
    await enqueue([Delivery(key=f"due:{n}", channel=channel, recipient=address,
                            payload={"text": "Przypomnienie", "subject": "Przypomnienie",
                                     "from": "sprawy@milanowek.example", "html": "",
                                     "message_id": f"<due{n}@milanowek.example>"},
                            not_before=gw.clock.now() + timedelta(seconds=1))
                   for n, (channel, address) in enumerate([("email", "ala@example.pl"),
                                                           ("telegram", "4242")])],
                  gw.clock.now())
    path = gw.settings.database_url.removeprefix("sqlite://")
    holder = hold_sqlite_lock(path, 12.0)
    gw.clock.advance(seconds=2)

    async def says_which_part_is_down() -> dict | None:
        resp = await gw.client.get("/healthz")
        body = await resp.json()
        return body if resp.status == 503 and body.get("failing") else None

    body = await eventually(says_which_part_is_down)
    assert any(part.startswith("outbox-") for part in body["failing"]), body
    # meanwhile a client is told to come back (or served, if the lock went), never a 500
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Lampa", "body": "nie świeci"})
    assert resp.status in (201, 503), await resp.text()
    if resp.status == 503:
        assert resp.headers["Retry-After"]
    await asyncio.to_thread(holder.join)

    # the lock is gone: mail and updates arriving now are answered with no restart
    code, _ = await gw.smtp(make_mail("Po awarii", "Czy ktoś to przeczyta?"))
    assert code == 250
    update = message_update(4242, "/pomoc")
    resp = await gw.client.post("/telegram/webhook", json=update,
                                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
    assert resp.status == 200
    await eventually(lambda: answered(gw, 4242, "Czy ktoś to przeczyta?"))
    # and what fell due during the outage went out, once
    assert [m["To"] for m in gw.sent_mail()].count("ala@example.pl") == 1
    assert gw.botapi.texts_to(4242).count("Przypomnienie") == 1

    async def healthy() -> bool:
        return (await gw.client.get("/healthz")).status == 200

    await eventually(healthy)
    restarts = await (await gw.client.get("/metrics")).text()
    assert "emil_part_restarts_total{part=\"outbox-" in restarts
    assert gw.app[HEALTH].parts["outbox-email"].restarts >= 1


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL terminating the gateway's connections")
async def test_postgres_dropping_every_connection_is_survived(live: Gateway) -> None:
    gw = live
    admin = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        code, _ = await gw.smtp(make_mail("Przed awarią", "pierwsza"))
        assert code == 250
        for _ in range(5):  # the operator restarts PostgreSQL, or a failover happens
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            await asyncio.sleep(0.3)
    finally:
        await admin.close()
    for _ in range(50):  # the SMTP client retries after a 451, as a relay would
        code, _ = await gw.smtp(make_mail("Po awarii", "druga"))
        if code == 250:
            break
        await asyncio.sleep(0.2)
    assert code == 250
    update = message_update(4343, "/pomoc")
    for _ in range(50):
        resp = await gw.client.post("/telegram/webhook", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
        if resp.status == 200:
            break
        assert resp.status == 503
        await asyncio.sleep(0.2)
    await eventually(lambda: answered(gw, 4343, "pierwsza"))
    await eventually(lambda: answered(gw, 4343, "druga"))

    async def healthy() -> bool:
        return (await gw.client.get("/healthz")).status == 200

    await eventually(healthy)


async def test_a_part_that_keeps_failing_is_restarted_and_reported() -> None:
    from gateway import tasks

    health = tasks.Health()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise sqlite3.OperationalError("database is locked")
        await asyncio.Event().wait()

    task = tasks.supervise("flaky", flaky, health, base=0.01, cap=0.02, settle=0.05)
    await eventually(lambda: _ready(health, runs), timeout=5)
    await tasks.stop(task)
    assert health.parts["flaky"].restarts == 2


async def _ready(health, runs: int) -> bool:  # type: ignore[no-untyped-def]
    return runs >= 3 and health.failing() == []
