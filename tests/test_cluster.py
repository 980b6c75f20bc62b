"""Several `serve` processes on one PostgreSQL: nothing sent twice beyond the in-flight
window of a killed process, every job run once, Telegram's rate held across instances."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from store.db import Store
from store.models import Identity, JobRun, Leadership, Loan, Person
from tests.conftest import PG_URL
from tests.doubles.botapi import BotApiDouble
from tests.test_process import free_port, serve, wait_http

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs EMIL_TEST_DATABASE_URL (PostgreSQL)")

STAFF, READERS, RATE = 5000, 40, 200


async def seed(database_url: str) -> date:
    store = Store(database_url)
    await store.open()
    now = datetime.now(timezone.utc)
    await Person.bulk_create([Person(name=f"S{n}", roles=["staff"], units=["urzad"],
                                     quiet_start="00:00", quiet_end="00:00", created_at=now)
                              for n in range(STAFF)], batch_size=1000)
    await Person.bulk_create([Person(name=f"C{n}", library_card=f"K{n}", created_at=now)
                              for n in range(READERS)])
    people = await Person.all().values_list("id", flat=True)
    await Identity.bulk_create([Identity(person_id=pid, channel="telegram",
                                         address=str(800_000 + pid), created_at=now)
                                for pid in people], batch_size=1000)
    today = now.astimezone().date()
    await Loan.bulk_create([Loan(id=f"L{n}", card=f"K{n}", title=f"T{n}",
                                 due=today - timedelta(days=8), updated_at=now)
                            for n in range(READERS)])
    await store.close()
    return today


@pytest.mark.timeout(360)  # three processes and 5,040 messages on a loaded 2-core machine
async def test_three_instances_one_killed(database_url: str, botapi: BotApiDouble,
                                          tmp_path: Path) -> None:
    today = await seed(database_url)
    botapi.enforce_overall = int(RATE * 1.2)
    botapi.enforce_per_chat = 1
    nodes = []
    for n in range(3):
        env = {
            "EMIL_DATABASE_URL": database_url, "EMIL_HTTP_PORT": str(free_port()),
            "EMIL_SMTP_PORT": str(free_port()), "EMIL_TELEGRAM_TOKEN": "123456:TEST-TOKEN",
            "EMIL_TELEGRAM_API_URL": botapi.url,  # type: ignore[attr-defined]
            "EMIL_TELEGRAM_MODE": "webhook", "EMIL_TELEGRAM_WEBHOOK_SECRET": "s",
            "EMIL_TELEGRAM_RATE": str(RATE), "EMIL_ADMIN_TOKEN": "cluster-admin",
            "EMIL_OUTBOX_LEASE_SECONDS": "3", "EMIL_LEADER_TTL_SECONDS": "3",
            "EMIL_ANNOUNCEMENT_POLL_SECONDS": "2", "EMIL_INSTANCE_NAME": f"node-{n}",
            "EMIL_SENT_MAIL_DIR": str(tmp_path / f"sent-{n}"),
        }
        nodes.append((env, await serve(env, tmp_path / f"node-{n}.log")))
    try:
        for env, _ in nodes:
            await wait_http(env["EMIL_HTTP_PORT"], timeout=60)
        auth = {"Authorization": "Bearer cluster-admin"}
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{nodes[0][0]['EMIL_HTTP_PORT']}/api/v1/announcements"
            async with http.post(url, headers=auth, json={
                    "title": "Próbny alarm", "body": "Ćwiczenia o 9:00.",
                    "audience": {"units": ["urzad"]}}) as resp:
                assert resp.status == 202
            runs = await asyncio.gather(*(
                http.post(f"http://127.0.0.1:{env['EMIL_HTTP_PORT']}/api/v1/library/overdue-run"
                          f"?due={today.isoformat()}", headers=auth) for env, _ in nodes))
            summaries = [await r.json() for r in runs]
        assert sum(1 for s in summaries if "messages" in s) == 1  # the job ran once
        await botapi.wait_for(STAFF // 3, timeout=60)
        store = Store(database_url)
        await store.open(migrate=False)
        try:
            await _kill_the_leader_and_check(store, nodes, botapi, today)
        finally:
            await store.close()
    finally:
        for _, proc in nodes:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for _, proc in nodes:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()


async def _kill_the_leader_and_check(store: Store, nodes: list[Any], botapi: BotApiDouble,
                                     today: date) -> None:
    """SIGKILL the instance leading Telegram's sending; the others take over and
    everybody gets their message, the killed leader's in-flight batch at most twice."""
    leader = (await Leadership.get(name="telegram")).holder
    victim = next(proc for env, proc in nodes if env["EMIL_INSTANCE_NAME"] == leader)
    os.killpg(victim.pid, signal.SIGKILL)
    await victim.wait()
    await botapi.wait_for(STAFF + READERS, timeout=120, distinct=True)
    texts: dict[str, list[str]] = {}
    for sent in botapi.sent:
        texts.setdefault(sent.chat_id, []).append(sent.text)
    announcement_copies = sum(1 for t in texts.values() for x in t if "Próbny alarm" in x)
    reminder_copies = [sum(1 for x in t if x.startswith("⏰")) for t in texts.values()]
    assert len(texts) == STAFF + READERS  # everybody got their message
    assert announcement_copies - STAFF <= RATE  # at most the killed leader's in-flight batch
    assert sum(reminder_copies) == READERS and max(reminder_copies) == 1  # exactly once
    assert botapi.throttled == 0, botapi.breaches[:5]
    assert await JobRun.filter(job="overdue-reminders", due=today.isoformat()).count() == 1
    assert (await Leadership.get(name="telegram")).holder != leader


async def test_three_instances_started_together_on_an_empty_database(
        empty_database_url: str, botapi: BotApiDouble, tmp_path: Path) -> None:
    """Issue #11: two of three `serve` processes used to die in the migration (duplicate
    `pg_type` rows); the advisory lock was taken on a pooled connection that was not the
    one migrating. Now all three come up, and the schema is migrated once."""
    from tests.test_process import gateway_env

    envs = [gateway_env(empty_database_url, botapi, tmp_path / str(n),
                        EMIL_INSTANCE_NAME=f"i{n}")
            for n in range(3)]
    logs = [tmp_path / f"serve{n}.log" for n in range(3)]
    procs = await asyncio.gather(*(serve(env, log) for env, log in zip(envs, logs, strict=True)))
    try:
        bodies = await asyncio.gather(*(wait_http(env["EMIL_HTTP_PORT"], timeout=60)
                                        for env in envs))
        assert all(body["status"] == "ok" for body in bodies)
        assert all(proc.returncode is None for proc in procs)
        applied = "".join(log.read_text() for log in logs).count("migration applied: models.0001")
        assert applied == 1
    finally:
        for proc in procs:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.gather(*(proc.wait() for proc in procs))
