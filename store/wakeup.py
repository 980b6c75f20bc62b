"""Wake-ups between the processes of one gateway, through PostgreSQL `LISTEN`/`NOTIFY`.

With `EMIL_WORKER_PROCESS` the intake process (SMTP, HTTP, webhook) stores what arrives
and a worker process handles it. Inside one process a stored message wakes the inbox
through an `asyncio.Event`; between the two it is a `NOTIFY` on a channel the worker
`LISTEN`s to. A notification only says "look now", it carries nothing: if one is lost
(the connection dropped), the worker's polling finds the rows a second or two later.
Both sides use a connection of their own, outside Tortoise's pool: a listening
connection must stay open, and a notification must not wait for a pool slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

INBOX = "emil_inbox"
OUTBOX = "emil_outbox"
PUBLISH = "emil_publish"
SIGN_IN = "emil_sign_in"


def asyncpg_dsn(database_url: str) -> str:
    """Tortoise's URL as asyncpg takes it: the `postgresql` scheme, without the query
    (pool sizes and the like are Tortoise's options, not libpq's)."""
    parts = urlsplit(database_url)
    return urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))


class Notifier:
    """Sends `NOTIFY`s. `notify()` is called from plain code in the event loop. After a
    notification, calls for `quiet` seconds are gathered and sent at its end, one per
    channel: a burst of mail costs a few round trips, not one each, and the worker —
    which lingers as long after waking anyway — still hears of the last message."""

    def __init__(self, database_url: str, quiet: float = 0.02) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.quiet = quiet
        self._conn: asyncpg.Connection | None = None
        self._pending: set[str] = set()
        self._task: asyncio.Task | None = None
        self._closed = False

    def notify(self, channel: str) -> None:
        if self._closed:  # shutting down: the worker is stopping too
            return
        self._pending.add(channel)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            channels, self._pending = self._pending, set()
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.dsn)
                for channel in sorted(channels):
                    await self._conn.execute("SELECT pg_notify($1, '')", channel)
                await asyncio.sleep(self.quiet)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("could not wake the worker process (%s); it will poll", error)
                self._conn = None
                return

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def listen(database_url: str, wakes: dict[str, Callable[[], None]],
                 retry_seconds: float = 2.0, ready: Callable[[], None] = lambda: None) -> None:
    """Run `wakes[channel]()` on every notification, for as long as the task runs;
    reconnects after a lost connection and wakes everything once on each (re)connect,
    for what arrived while nobody listened."""
    dsn = asyncpg_dsn(database_url)
    while True:
        conn = None
        try:
            conn = await asyncpg.connect(dsn)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            for channel, wake in wakes.items():
                await conn.add_listener(channel, lambda *_args, wake=wake: wake())
            for wake in wakes.values():
                wake()
            ready()
            await lost.wait()
            log.warning("the wake-up connection closed; reconnecting")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("cannot listen for wake-ups (%s); retrying", error)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()
        await asyncio.sleep(retry_seconds)
