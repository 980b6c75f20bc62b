"""The schools' figures as stored cells (issue #20): the counting's one long read, and a
school year's cells written together and read in one query.

Counting a year of a town's register (2.4 million attendance entries for 2,000 pupils)
takes seconds; the page must answer in milliseconds on every instance alike. So a job
counts (handlers/figures.py) and writes `FigureCell` rows here; the page reads them.

Besides the numbers a year holds rows whose `pupils` is `HEADING` (no number at all):
- one per column of each figure, so that a column with no cell (a class without remarks)
  is still a column of the table, as it was when the page counted itself;
- one mark per year (figure `MARK`), whose `computed_at` says when the year was counted,
  so that a year counted with no data at all reads "no data", not "being computed".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.sqlite.client import SqliteClient
from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from store.models import FigureCell
from store.sql import on_postgres, sql

#: `pupils` of a row that carries no number: a column heading, or the year's mark
HEADING = -1
#: the `figure` of a year's mark
MARK = ""

#: (figure, row_label, column_label, position, value, pupils)
Row = tuple[str, str, str, int, float, int]

# A pupil's lessons of one week counted by the database: about 30 entries become one row
# (two where the week spans two months, for the late arrivals by month). The week starts
# on Monday; SQLite and PostgreSQL say that differently. SQLite: the Julian day number
# (day 0 was a Monday) over 7 numbers the weeks; twice as fast as building the Monday's
# date with date() and strftime() on every entry, which was slower than no grouping.
_BY_WEEK_SQLITE = """
SELECT student_id, CAST(julianday(date) + 0.5 AS INTEGER) / 7 AS week,
       substr(date, 1, 7) AS month,
       COUNT(*),
       SUM(CASE WHEN status IN (?, ?) THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = ? THEN 1 ELSE 0 END)
FROM attendance WHERE date >= ? AND date <= ?
GROUP BY student_id, week, month"""
_BY_WEEK_POSTGRES = """
SELECT student_id, date_trunc('week', date)::date AS week, to_char(date, 'YYYY-MM') AS month,
       COUNT(*),
       SUM(CASE WHEN status IN (?, ?) THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = ? THEN 1 ELSE 0 END)
FROM attendance WHERE date >= ? AND date <= ?
GROUP BY student_id, week, month"""


@contextlib.asynccontextmanager
async def long_reads() -> AsyncIterator[BaseDBAsyncClient]:
    """A connection for the counting's seconds-long reads. SQLite: a read-only connection
    of its own to the file (as `Store.reader` for the console's search): Tortoise's SQLite
    client has one connection, and a long statement on it holds up mail, the outbox and
    `/healthz`; in WAL mode a second reader waits for nobody. PostgreSQL: the pool."""
    db = get_connection("default")
    if on_postgres(db) or not isinstance(db, SqliteClient) or ":memory:" in db.filename:
        yield db
        return
    reader = SqliteClient(db.filename, connection_name="figures", journal_mode="WAL",
                          query_only="ON")
    try:
        yield reader
    finally:
        await reader.close()


async def attendance_by_week(db: BaseDBAsyncClient, start: date, end: date,
                             present: Sequence[str], late: str
                             ) -> list[tuple[str, str, str, int, int, int]]:
    """Each pupil's attendance from `start` to `end` by (week, month): (pupil, Monday of
    the week as ISO date, "YYYY-MM", lessons, lessons present (a status in `present`),
    lessons late)."""
    postgres = on_postgres(db)
    text = sql(db, _BY_WEEK_POSTGRES if postgres else _BY_WEEK_SQLITE)
    first, last = present
    bounds: list[Any] = [start, end] if postgres else [start.isoformat(), end.isoformat()]
    _, rows = await db.execute_query(text, [first, last, late, *bounds])
    return [(row[0], _monday(row[1]), row[2], int(row[3]), int(row[4] or 0), int(row[5] or 0))
            for row in rows]


#: the Julian day number of 1 January 1970
_JD_1970 = 2440588


def _monday(week: date | int) -> str:
    """The week's Monday as an ISO date, from PostgreSQL's date or SQLite's week number."""
    if isinstance(week, date):
        return week.isoformat()
    return (date(1970, 1, 1) + timedelta(days=int(week) * 7 - _JD_1970)).isoformat()


async def replace_year(year: int, rows: Sequence[Row], computed_at: datetime) -> None:
    """The year's cells replaced by `rows` and its mark, in one transaction: a reader sees
    the old year or the new one, never a part of each; a failure leaves the old whole."""
    cells = [FigureCell(year=year, figure=figure, row_label=row, column_label=column,
                        position=position, value=value, pupils=pupils, computed_at=computed_at)
             for figure, row, column, position, value, pupils in rows]
    cells.append(FigureCell(year=year, figure=MARK, row_label="", column_label="", position=0,
                            value=0.0, pupils=HEADING, computed_at=computed_at))
    async with in_transaction():
        await FigureCell.filter(year=year).delete()
        await FigureCell.bulk_create(cells, batch_size=2000)


async def computed_at(year: int) -> datetime | None:
    """When the year was last counted, or None: never."""
    found = await FigureCell.filter(year=year, figure=MARK).values_list("computed_at", flat=True)
    return found[0] if found else None  # type: ignore[return-value]


async def read_year(year: int) -> tuple[datetime | None, list[Row]]:
    """The year's cells in one query (one snapshot: the mark and the cells of one
    computation), and when they were counted (None: never)."""
    found = await FigureCell.filter(year=year).values_list(
        "figure", "row_label", "column_label", "position", "value", "pupils", "computed_at")
    when = next((r[6] for r in found if r[0] == MARK and r[5] == HEADING), None)
    return when, [tuple(r[:6]) for r in found if r[0] != MARK]


async def counted_years() -> list[tuple[int, datetime]]:
    """Every counted year and when it was counted."""
    return list(await FigureCell.filter(figure=MARK, pupils=HEADING).values_list(
        "year", "computed_at"))
