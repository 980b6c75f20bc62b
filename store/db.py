"""Opening, migrating and closing the store.

Tortoise 1.x keeps its state in a `TortoiseContext`. We hold the context object we create
and close *that* (closing through the class-level helper from another task closes nothing
and leaves aiosqlite's thread alive — see shared/NOTES.md). The context is also set as
Tortoise's global fallback, because aiohttp runs request handlers and our workers in tasks
that do not inherit the contextvar set during start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.connection import get_connection
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor

from store import sqlite_fix

log = logging.getLogger(__name__)
sqlite_fix.install()

APP_LABEL = "models"
MODELS_MODULE = "store.models"
MIGRATIONS_MODULE = "store.migrations"
#: any number; the advisory lock that makes concurrent `serve` starts migrate once
_MIGRATION_LOCK_ID = 727_001


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The Tortoise config for our single app, from a Tortoise database URL."""
    return {
        "connections": {"default": database_url},
        "apps": {
            APP_LABEL: {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


#: for the `tortoise` CLI (`tortoise -c store.db.TORTOISE_ORM makemigrations`)
TORTOISE_ORM = tortoise_config(os.environ.get("EMIL_DATABASE_URL", "sqlite://var/emilanowek.db"))


def is_postgres(database_url: str) -> bool:
    return database_url.startswith(("postgres://", "postgresql://", "asyncpg://", "psycopg://"))


def _ensure_sqlite_folder(database_url: str) -> None:
    if database_url.startswith("sqlite://") and ":memory:" not in database_url:
        path = database_url.removeprefix("sqlite://").split("?", 1)[0]
        Path(path).parent.mkdir(parents=True, exist_ok=True)


class Store:
    """The open store: a Tortoise context plus what the rest of the gateway asks of it."""

    def __init__(self, database_url: str, sqlite_synchronous: str = "FULL") -> None:
        self.database_url = database_url
        self.sqlite_synchronous = sqlite_synchronous
        self.postgres = is_postgres(database_url)
        self._context: TortoiseContext | None = None
        self._reader: SqliteClient | None = None

    async def open(self, *, migrate: bool = True) -> None:
        _ensure_sqlite_folder(self.database_url)
        context = TortoiseContext()
        with context:  # init needs it current; afterwards the global fallback serves
            await context.init(
                config=tortoise_config(self.database_url), _enable_global_fallback=True
            )
        self._context = context
        if not self.postgres:
            conn = get_connection("default")
            # WAL lets readers go on while the outbox commits. FULL syncs the WAL on every
            # commit, so mail acknowledged with 250 survives a power loss; NORMAL survives
            # only a process crash (sqlite.org/pragma.html#pragma_synchronous). The cost
            # is measured in bench/ (README, "Benchmarks"). secure_delete: what is deleted
            # (erasure, retention) is overwritten with zeros, not left on free pages for a
            # copy of the file to show (store/scrub.py; its cost is in the README).
            await conn.execute_script(
                f"PRAGMA journal_mode=WAL; PRAGMA synchronous={self.sqlite_synchronous}; "
                "PRAGMA secure_delete=ON;")
        if migrate:
            await self.migrate()
        if not self.postgres and ":memory:" not in self.database_url:
            self._reader = _sqlite_reader(self.database_url)

    def reader(self) -> BaseDBAsyncClient:
        """The connection for long reads — the console's search (issue #18: eight
        one-letter words took 590 ms at 100,000 cases, and everything else waited).
        SQLite: a second, read-only connection to the file. A connection runs one
        statement at a time, and Tortoise's SQLite client has only one, so a search on it
        held up mail, the outbox and `/healthz`; in WAL mode a reader neither waits for
        the writer nor holds it up (sqlite.org/wal.html). PostgreSQL: the pool, where
        each statement takes a connection of its own anyway."""
        return self._reader or get_connection("default")

    async def migrate(self) -> list[str]:
        """Apply pending migrations; on PostgreSQL under an advisory lock so that several
        instances starting together migrate once."""
        conn = get_connection("default")
        applied: list[str] = []

        def progress(event: str, app: str, name: str) -> None:
            if event == "apply_done":
                applied.append(f"{app}.{name}")
                log.info("migration applied: %s.%s", app, name)

        executor = MigrationExecutor(conn, {APP_LABEL: tortoise_config("")["apps"][APP_LABEL]})
        if self.postgres:
            # The advisory lock is a session lock: it must be held on a connection of its
            # own for the whole migration. Taken through Tortoise's pool, the lock and the
            # statements after it may run on different connections, and three `serve`
            # processes started together on an empty database crashed on duplicate
            # `pg_type` rows (shared/NOTES.md). A dedicated asyncpg connection cannot.
            import asyncpg

            from store.wakeup import asyncpg_dsn

            guard = await asyncpg.connect(asyncpg_dsn(self.database_url))
            try:
                await guard.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_ID)
                await executor.migrate(progress=progress)
            finally:
                await guard.close()  # closing the session releases its advisory lock
        else:
            await executor.migrate(progress=progress)
        return applied

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._context is not None:
            await self._context.close_connections()
            self._context = None

    async def ping(self, timeout: float | None = None) -> bool:
        """Whether the store answers `SELECT 1` (within `timeout` seconds): on the
        connection every write goes through, so a store that is held up says so."""
        try:
            await asyncio.wait_for(get_connection("default").execute_query("SELECT 1"),
                                   timeout)
            return True
        except TimeoutError:
            log.warning("store ping: no answer in %s s", timeout)
            return False
        except Exception:  # noqa: BLE001 - health check reports, never raises
            log.warning("store ping failed", exc_info=True)
            return False


def _sqlite_reader(database_url: str) -> SqliteClient:
    """A second client on the SQLite file that refuses to write (`query_only`). Opened
    on first use; its pragmas as the URL gives them, WAL as the file already has."""
    params = dict(expand_db_url(database_url)["credentials"])
    params.update(connection_name="reader", journal_mode="WAL", foreign_keys="ON",
                  query_only="ON")
    return SqliteClient(**params)
