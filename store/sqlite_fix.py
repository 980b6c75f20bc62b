"""A guard for Tortoise 1.1's SQLite transactions against cancellation.

`SqliteTransactionContext.__aenter__` takes the connection's transaction lock, then awaits
`BEGIN`. A task cancelled during that await (a worker stopped on SIGTERM) leaves
`__aenter__` with the lock held, and since `__aexit__` never runs, nobody releases it:
the next transaction of the process — the Telegram role's release on shutdown, seen in
tests/test_process.py — waits forever. This wrapper undoes a half-entered transaction
(roll back whatever began, reset the connection contextvar, release the lock) before the
cancellation goes on. Installed once by `store.db`; PostgreSQL's pooled context is not
affected (its connection goes back to the pool in `__aexit__` of its own pool context).
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.sqlite.client import SqliteTransactionContext
from tortoise.connection import get_connections


async def _guarded_enter(self: SqliteTransactionContext) -> Any:
    await self._trxlock.acquire()
    token = None
    try:
        await self.ensure_connection()
        token = get_connections().set(self.connection_name, self.connection)
        self.token = token
        await self.connection.begin()
        return self.connection
    except BaseException:
        try:
            await self.connection.rollback()  # whatever BEGIN managed to start
        except BaseException:  # noqa: BLE001 - nothing began, or cancelled again: the lock still goes back
            pass
        finally:
            if token is not None:
                get_connections().reset(token)
            self._trxlock.release()
        raise


def install() -> None:
    if SqliteTransactionContext.__aenter__ is not _guarded_enter:
        SqliteTransactionContext.__aenter__ = _guarded_enter  # type: ignore[method-assign]
