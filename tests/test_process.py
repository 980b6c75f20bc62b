"""The real `emilanowek serve` process: clean stop on SIGTERM, and no loss after kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from gateway.dispatcher import AT_RISK_MIN
from store.db import Store
from store.models import Outbox
from store.outbox import Delivery, enqueue
from tests.conftest import START
from tests.doubles.botapi import BotApiDouble


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", env={**os.environ, **env},
            stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True)


def gateway_env(database_url: str, botapi: BotApiDouble, tmp_path: Path, **extra: str) -> dict:
    return {
        "EMIL_DATABASE_URL": database_url,
        "EMIL_HTTP_PORT": str(free_port()),
        "EMIL_SMTP_PORT": str(free_port()),
        "EMIL_TELEGRAM_TOKEN": "123456:TEST-TOKEN",
        "EMIL_TELEGRAM_API_URL": botapi.url,  # type: ignore[attr-defined]
        "EMIL_TELEGRAM_MODE": "polling",
        "EMIL_SENT_MAIL_DIR": str(tmp_path / "sent"),
        "EMIL_OUTBOX_LEASE_SECONDS": "2",
        "EMIL_LEADER_TTL_SECONDS": "2",
        **extra,
    }


async def wait_http(port: str, timeout: float = 30) -> dict:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout * 10)):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return await resp.json()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError("gateway did not come up")


async def test_sigterm_stops_cleanly(database_url: str, botapi: BotApiDouble, tmp_path: Path
                                     ) -> None:
    env = gateway_env(database_url, botapi, tmp_path)
    proc = await serve(env, tmp_path / "serve.log")
    health = await wait_http(env["EMIL_HTTP_PORT"])
    assert health == {"status": "ok", "store": True, "outbox": True, "smtp": True,
                      "unread_mail": 0}
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_kill_9_mid_send_loses_nothing(database_url: str, botapi: BotApiDouble,
                                             tmp_path: Path) -> None:
    chats = [str(9000 + n) for n in range(60)]
    store = Store(database_url)
    await store.open()
    await enqueue([Delivery(key=f"k:{c}", channel="telegram", recipient=c, payload={"text": c})
                   for c in chats], START)
    await store.close()

    env = gateway_env(database_url, botapi, tmp_path, EMIL_TELEGRAM_RATE="20")
    first = await serve(env, tmp_path / "first.log")
    await botapi.wait_for(15, timeout=30)
    os.killpg(first.pid, signal.SIGKILL)
    await first.wait()
    delivered_before = len(botapi.sent)
    assert delivered_before < len(chats), "the kill came too late to prove anything"

    second = await serve(env, tmp_path / "second.log")
    try:
        await botapi.wait_for(len(chats), timeout=60, distinct=True)
        got = {s.chat_id for s in botapi.sent}
        assert got == set(chats)
        # at most what the killed process had at risk goes twice: rows being sent, or
        # sent and waiting for their mark (gateway/dispatcher.py, AT_RISK_MIN at 20/s)
        assert len(botapi.sent) - len(chats) <= AT_RISK_MIN
        store = Store(database_url)
        await store.open(migrate=False)
        for _ in range(50):
            if await Outbox.filter(status="sent").count() == len(chats):
                break
            await asyncio.sleep(0.1)
        assert await Outbox.filter(status="sent").count() == len(chats)
        await store.close()
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 20)
