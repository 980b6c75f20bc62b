"""`EMIL_WORKER_PROCESS`: intake and handling in two processes on PostgreSQL — woken by
`NOTIFY`, supervised, and stopped together."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from email import message_from_string
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import aiosmtplib
import pytest

from store import wakeup
from tests.conftest import PG_URL
from tests.doubles.botapi import BotApiDouble
from tests.test_process import gateway_env, serve, wait_http

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs EMIL_TEST_DATABASE_URL (PostgreSQL)")


async def test_notifications_wake_the_listener_and_bursts_are_gathered(database_url: str
                                                                       ) -> None:
    woken: list[str] = []
    ready = asyncio.Event()
    listening = asyncio.create_task(wakeup.listen(database_url, {
        wakeup.INBOX: lambda: woken.append("inbox"),
        wakeup.OUTBOX: lambda: woken.append("outbox"),
    }, ready=ready.set))
    await asyncio.wait_for(ready.wait(), 10)
    assert sorted(woken) == ["inbox", "outbox"]  # once on connecting, for what came before
    woken.clear()
    notifier = wakeup.Notifier(database_url, quiet=0.2)
    try:
        notifier.notify(wakeup.INBOX)
        for _ in range(100):
            if woken:
                break
            await asyncio.sleep(0.01)
        assert woken == ["inbox"]  # the first goes at once ...
        for _ in range(49):
            notifier.notify(wakeup.INBOX)
            await asyncio.sleep(0)
        await asyncio.sleep(0.6)
        assert woken == ["inbox", "inbox"]  # ... the rest of the burst as one, after it
    finally:
        await notifier.close()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


def mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "jan@example.pl", "sprawy@milanowek.example", subject
    msg.set_content("Na ul. Spacerowej jest dziura.")
    return msg


async def replies(folder: Path, count: int, timeout: float = 30) -> list[str]:
    for _ in range(int(timeout * 10)):
        files = sorted(folder.glob("**/*.eml"))
        if len(files) >= count:
            return [f.read_text() for f in files]
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{count} replies did not arrive")


def worker_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"worker process started \(pid (\d+)\)",
                                           log.read_text())]


async def test_mail_is_handled_in_the_worker_which_is_restarted_and_stopped(
        database_url: str, botapi: BotApiDouble, tmp_path: Path) -> None:
    env = gateway_env(database_url, botapi, tmp_path, EMIL_WORKER_PROCESS="true")
    log = tmp_path / "serve.log"
    proc = await serve(env, log)
    try:
        health = await wait_http(env["EMIL_HTTP_PORT"])
        assert health["worker"] is True and health["smtp"] is True
        port = int(env["EMIL_SMTP_PORT"])
        await aiosmtplib.send(mail("Dziura w drodze"), hostname="127.0.0.1", port=port)
        [reply] = await replies(tmp_path / "sent", 1)
        subject = message_from_string(reply, policy=default)["Subject"]
        assert re.search(r"\[UM-\d{4}-\d{6}\]", subject)

        # a worker that dies is replaced, and the new one handles what came meanwhile
        [first] = worker_pids(log)
        os.kill(first, signal.SIGKILL)
        await aiosmtplib.send(mail("Druga dziura"), hostname="127.0.0.1", port=port)
        await replies(tmp_path / "sent", 2)
        pids = worker_pids(log)
        assert len(pids) == 2 and pids[1] != first
        assert (await wait_http(env["EMIL_HTTP_PORT"]))["worker"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    with pytest.raises(ProcessLookupError):  # stopped with the gateway, and reaped
        os.kill(worker_pids(log)[-1], 0)
