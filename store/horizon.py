"""Up to which id a table's rows are final: no transaction still running can commit a
row with a lower id. A watermark that walks a table in id order (handlers/
signature_check.py) may pass only that far.

Why not a clock: on PostgreSQL an id comes from a sequence when the row is inserted,
and transactions commit in any order — an intake still committing id 10 while id 11 is
visible. A rule like "pass rows a minute old" reads `created_at`, which each instance
stamps with its own clock: an instance whose clock lags by two minutes writes rows that
look old at once, and the watermark passes the id still being committed, for good.

What is used instead is PostgreSQL's own record of running transactions
(`pg_current_snapshot()`, PostgreSQL 13+, "System Information Functions": xmin is the
oldest transaction still running, xmax one past the newest started). Read the highest
visible id *top*, then, in a later statement, a snapshot *S*: every transaction that had
taken an id up to *top* had a transaction id below S's xmax by then (an intake holds one
from its first row, the case or the message, before it inserts an attachment; at the
latest it takes one in the very statement that takes the id). Once a later snapshot's
xmin reaches S's xmax, every one of them has ended — committed or rolled back — and ids
up to *top* are final. With nothing running, that is at once; with a long transaction
open, it waits for it (it never skips).

On SQLite writes are serialised (one writer at a time, and one process: the embedded
engine): a row that is visible was committed in id order, so there is no horizon.
"""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from store.sql import on_postgres

#: pending (top, xmax) pairs kept at most: a later pair settles every earlier one, so
#: dropping the oldest when a long transaction holds them all loses nothing but time
_KEPT = 1000


class Horizon:
    """One table's horizon, as seen by one reader (each instance keeps its own: the
    pending pairs are facts about the database, true from whichever instance read them)."""

    def __init__(self, table: str) -> None:
        if not table.isidentifier():
            raise ValueError(f"not a table name: {table!r}")
        self.table = table
        self._pending: list[tuple[int, int]] = []
        self._final = 0

    async def final(self, db: BaseDBAsyncClient) -> int | None:
        """The highest id known final now (never less than before); None: every visible
        row is final (SQLite)."""
        if not on_postgres(db):
            return None
        _, rows = await db.execute_query(
            f"SELECT coalesce(max(id), 0) AS top FROM {self.table}")  # noqa: S608 - checked
        top = int(rows[0]["top"])
        # a second statement, so a later snapshot than the one that saw `top`
        _, rows = await db.execute_query(
            "SELECT pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax "
            "FROM pg_current_snapshot() AS s")
        xmin, xmax = int(rows[0]["xmin"]), int(rows[0]["xmax"])
        self._pending = [*self._pending[-(_KEPT - 1):], (top, xmax)]
        settled = [top for top, started in self._pending if started <= xmin]
        self._pending = [(top, started) for top, started in self._pending if started > xmin]
        self._final = max([self._final, *settled])
        return self._final
