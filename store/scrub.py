"""What a deletion leaves in the database's files, and removing it (RODO erasure, #18).

A row deleted by SQL is gone for SQL, not for a copy of the disk. The full-text index
keeps a deleted document's words in its pages until its segments are merged: `settle`
merges them first, in short steps after the commit (store/search.py, `purge`). On SQLite
the store's
connection runs with `PRAGMA secure_delete=ON` (store/db.py), so a deleted row's bytes
and the pages it freed are overwritten with zeros in the transaction that deletes it
(sqlite.org/pragma.html#pragma_secure_delete). What remains after the commit is the
write-ahead log: the old page images written there earlier stay in the file, past the
point where the log is reused, until they happen to be overwritten. `settle` checkpoints
the log into the database and truncates it to nothing.

On PostgreSQL a deleted or updated row stays in its table's pages as a dead tuple (and in
its indexes, the search index's GIN among them) until VACUUM; VACUUM cannot run inside a
transaction, so `settle` runs it on the tables an erasure touched once its transaction has
committed. Even after VACUUM the freed space of a page is not overwritten at once, and the
server's WAL segments and any backups hold the old rows until they are recycled — what a
database with point-in-time recovery must say honestly (README, "What is stored").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.connection import get_connection

from store import search
from store.sql import on_postgres

log = logging.getLogger(__name__)


async def settle(tables: Iterable[str]) -> str:
    """After an erasure has committed, leave nothing of what it deleted in the files the
    database keeps beside its tables. Returns what was done, for the erasure's report:
    "wal truncated", "wal busy" (another process was reading: the log keeps its old pages
    until they are overwritten or the next erasure truncates it), or "vacuumed"; with
    "search index merge unfinished, " before it when writers kept the merge from its end
    (the next erasure or retention run carries it on)."""
    db = get_connection("default")
    # the search index first: its merge frees (and zeroes) pages, and writes the log
    merged = await search.purge()
    return ("" if merged else "search index merge unfinished, ") + await _files(db, tables)


async def _files(db: BaseDBAsyncClient, tables: Iterable[str]) -> str:
    if on_postgres(db):
        names = sorted(set(tables))
        # the names are our own table names, never input: written into the statement
        await db.execute_script("VACUUM " + ", ".join(f'"{name}"' for name in names))
        return "vacuumed"
    _, rows = await db.execute_query("PRAGMA wal_checkpoint(TRUNCATE)")
    busy = bool(rows and rows[0][0])
    if busy:
        log.warning("erasure: the WAL could not be truncated now (another reader); "
                    "it will be at a later checkpoint")
    return "wal busy" if busy else "wal truncated"
