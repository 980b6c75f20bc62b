"""The schools' figures for the education office (issue #20): attendance, late arrivals,
grade averages and remarks, aggregated from what the register hooks deliver (the
Attendance, Grade, Remark and Student tables).

Aggregates only: a cell that describes fewer than `MIN_PUPILS` pupils is suppressed (its
number is never handed on, only `shown=False`), so that a small class's figure cannot
point at a child. There is no school column in the register's data: a school is the part
of the class name before its first space ("SP2 4a" belongs to "SP2"); a class name without
a space belongs to the one school, "" (shown as "—").
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from handlers.context import ServiceContext
from store import figure_cells, jobruns
from store.models import Attendance, Grade, Remark, Student

#: a cell describing fewer pupils than this is suppressed (statistical disclosure control)
MIN_PUPILS = 5
SUPPRESSED = "<5"
#: attendance statuses in which the pupil was at the lesson
PRESENT = ("present", "late")
#: a grade's modifier as most Polish registers count it (4+ = 4.5, 4- = 3.75)
_MODIFIER = {"+": 0.5, "-": -0.25, "": 0.0}
_GRADE = re.compile(r"^\s*([1-6])\s*([+-]?)\s*$")
REMARK_KINDS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class Cell:
    """One number of a figure and how many pupils it describes."""

    value: float
    pupils: int

    @property
    def shown(self) -> bool:
        return self.pupils >= MIN_PUPILS


@dataclass
class Figure:
    """A table of cells: `rows` (labels) by `columns` (labels); `kind` says how a value
    reads: "rate" (a share, 0–1), "average" or "count"."""

    key: str
    kind: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)

    def cell(self, row: str, column: str) -> Cell | None:
        return self.rows.get(row, {}).get(column)


def school_of(class_name: str) -> str:
    """The school a class belongs to, read from its name (see the module's docstring)."""
    head, _, rest = class_name.strip().partition(" ")
    return head if rest else ""


def school_year(year: int) -> tuple[date, date]:
    """1 September of `year` to 31 August of the next (the Polish school year)."""
    return date(year, 9, 1), date(year + 1, 8, 31)


def school_year_of(day: date) -> int:
    return day.year if day.month >= 9 else day.year - 1


def grade_value(text: str) -> float | None:
    """A grade as a number on the 1–6 scale, or None for a mark that is no grade
    ("np", "bz", "+")."""
    found = _GRADE.match(text or "")
    if not found:
        return None
    return int(found.group(1)) + _MODIFIER[found.group(2)]


def _weight(text: str | None) -> float:
    try:
        weight = float((text or "1").replace(",", "."))
    except ValueError:
        return 1.0
    return weight if weight > 0 else 1.0


def _month(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


class _Tally:
    """Sums per (row, column) and the pupils seen in each."""

    def __init__(self) -> None:
        self.top: dict[tuple[str, str], float] = defaultdict(float)
        self.bottom: dict[tuple[str, str], float] = defaultdict(float)
        self.pupils: dict[tuple[str, str], set[str]] = defaultdict(set)

    def add(self, row: str, column: str, pupil: str, top: float, bottom: float = 1.0) -> None:
        key = (row, column)
        self.top[key] += top
        self.bottom[key] += bottom
        self.pupils[key].add(pupil)

    def figure(self, key: str, kind: str, columns: list[str]) -> Figure:
        found = Figure(key, kind, columns)
        for (row, column), bottom in sorted(self.bottom.items()):
            value = self.top[(row, column)] if kind == "count" else self.top[(row, column)] / bottom
            found.rows.setdefault(row, {})[column] = Cell(value, len(self.pupils[(row, column)]))
        return found


async def compute(year: int, zone: tzinfo) -> list[Figure]:
    """Every figure for the school year starting in September of `year`; grades and
    remarks fall in the year and month of the town's clock (`zone`). The rows are read
    on a connection of their own (store/figure_cells.long_reads); the counting, tens of
    thousands of rows of plain Python, runs in a thread (review of #20: seconds of it on
    the event loop stopped mail, the bot and HTTP)."""
    start, end = school_year(year)
    first = datetime.combine(start, datetime.min.time(), zone)
    last = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone)
    async with figure_cells.long_reads() as db:
        classes = dict(await Student.all().using_db(db).values_list("id", "class_name"))
        # a pupil's week counted by the database: ~30 entries read as one row (#20)
        entries = await figure_cells.attendance_by_week(db, start, end, PRESENT, "late")
        rows = await Grade.filter(recorded_at__gte=first, recorded_at__lt=last).using_db(
            db).values_list("student_id", "subject", "value", "weight", "recorded_at")
        remarked = await Remark.filter(recorded_at__gte=first, recorded_at__lt=last
                                       ).using_db(db).values_list("student_id", "kind")
    return await asyncio.to_thread(_count, classes, entries, rows, remarked, zone)


def _count(classes: dict[str, str], entries: list[Any], rows: list[Any],
           remarked: list[Any], zone: tzinfo) -> list[Figure]:
    """The figures from the rows `compute` read. A pupil is in one class, so the pupils
    of a school's cell are its classes' pupils together."""
    by_school_week, by_class_week, late = _Tally(), _Tally(), _Tally()
    weeks: set[str] = set()
    months: set[str] = set()  # of attendance (late arrivals)
    graded: set[str] = set()  # of grades (the trend)
    for pupil, week, month, lessons, here, lates in entries:
        class_name = classes.get(pupil)
        if class_name is None:
            continue
        weeks.add(week)
        months.add(month)
        by_school_week.add(school_of(class_name), week, pupil, here, lessons)
        by_class_week.add(class_name, week, pupil, here, lessons)
        late.add(class_name, month, pupil, lates, lessons)
    grades, trend = _Tally(), _Tally()
    for pupil, subject, value, weight, recorded in rows:
        number, class_name = grade_value(value), classes.get(pupil)
        if number is None or class_name is None:
            continue
        grades.add(subject, class_name, pupil, number * _weight(weight), _weight(weight))
        month = _month(recorded.astimezone(zone).date())
        graded.add(month)
        trend.add(school_of(class_name), month, pupil, number * _weight(weight), _weight(weight))
    remarks = _Tally()
    for pupil, kind in remarked:
        if pupil in classes and kind in REMARK_KINDS:
            remarks.add(kind, classes[pupil], pupil, 1.0)
    class_names = sorted(set(classes.values()))
    per_class = by_class_week.figure("attendance_classes", "rate", sorted(weeks))
    return [
        hide_totals_over_hidden(
            by_school_week.figure("attendance_schools", "rate", sorted(weeks)), per_class),
        per_class,
        late.figure("late", "count", sorted(months)),
        grades.figure("grades", "average", class_names),
        remarks.figure("remarks", "count", class_names),
        trend.figure("trend", "average", sorted(graded)),
    ]


def hide_totals_over_hidden(totals: Figure, parts: Figure) -> Figure:
    """A school's cell is hidden when one of its classes' cells of the same column is
    (review of #20): a school's rate is its classes' rates together, so with the school
    and its shown classes the hidden class could be worked out — a one-pupil class's
    attendance, week by week. Secondary suppression, as statistics offices do it."""
    for row, cells in parts.rows.items():
        for column, cell in cells.items():
            total = totals.cell(school_of(row), column)
            if not cell.shown and total is not None and total.shown:
                totals.rows[school_of(row)][column] = Cell(0.0, 0)  # nothing to leak
    return totals


#: each figure's key and kind, in page order (what `compute` returns)
KINDS = {"attendance_schools": "rate", "attendance_classes": "rate", "late": "count",
         "grades": "average", "remarks": "count", "trend": "average"}
#: how often the register's changes are looked for (the refresh job, on the clock's
#: minutes so that every instance names the same due time): the figures are at most this
#: much plus one counting older than the register
REFRESH_MINUTES = 5


def to_rows(found: list[Figure]) -> list[figure_cells.Row]:
    """The figures as stored cells: a heading row per column (a column may have no cell)
    and a row per cell, `position` the column's place. A hidden cell is stored without
    its number (value 0): nobody reading the table later needs it, so it is not kept."""
    rows: list[figure_cells.Row] = []
    for figure in found:
        place = {column: n for n, column in enumerate(figure.columns)}
        rows += [(figure.key, "", column, n, 0.0, figure_cells.HEADING)
                 for column, n in place.items()]
        rows += [(figure.key, row, column, place[column], cell.value if cell.shown else 0.0,
                  cell.pupils)
                 for row, cells in figure.rows.items() for column, cell in cells.items()]
    return rows


def from_rows(rows: list[figure_cells.Row]) -> list[Figure]:
    """The figures back from stored cells, rows in the order `compute` gives them."""
    found = {key: Figure(key, kind, []) for key, kind in KINDS.items()}
    headings: dict[str, list[tuple[int, str]]] = defaultdict(list)
    cells: dict[str, dict[str, dict[str, Cell]]] = defaultdict(lambda: defaultdict(dict))
    for key, row, column, position, value, pupils in rows:
        if key not in found:
            continue
        if pupils == figure_cells.HEADING:
            headings[key].append((position, column))
        else:
            cells[key][row][column] = Cell(value, pupils)
    for key, figure in found.items():
        figure.columns = [column for _, column in sorted(headings[key])]
        figure.rows = {row: cells[key][row] for row in sorted(cells[key])}
    return list(found.values())


async def recompute(year: int, zone: tzinfo, now: datetime) -> dict[str, Any]:
    """Count the year and replace its stored cells. `now` (taken before counting) is the
    year's `computed_at`: what changes while it counts is newer, so it is counted again."""
    found = await compute(year, zone)
    rows = to_rows(found)
    await figure_cells.replace_year(year, rows, now)
    return {"year": year, "cells": len(rows)}


async def _stale(year: int, since: datetime, zone: tzinfo) -> bool:
    """Whether the register changed the year's entries after `since` (by their
    `updated_at`: every feed, import and API write sets it). A pupil moved to another
    class, or entries deleted, wait for the nightly counting."""
    start, end = school_year(year)
    first = datetime.combine(start, datetime.min.time(), zone)
    last = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone)
    async with figure_cells.long_reads() as db:
        return (await Attendance.filter(date__gte=start, date__lte=end, updated_at__gt=since
                                        ).using_db(db).exists()
                or await Grade.filter(recorded_at__gte=first, recorded_at__lt=last,
                                      updated_at__gt=since).using_db(db).exists()
                or await Remark.filter(recorded_at__gte=first, recorded_at__lt=last,
                                       updated_at__gt=since).using_db(db).exists())


async def nightly_run(ctx: ServiceContext) -> dict[str, Any]:
    """The job "figures": the current school year counted again, whatever changed."""
    now = ctx.clock.now()
    return await recompute(school_year_of(now.astimezone(ctx.zone).date()), ctx.zone, now)


async def refresh_run(ctx: ServiceContext) -> dict[str, Any]:
    """The job "figures-refresh" (every REFRESH_MINUTES): each counted year the register
    changed since is counted again. Debounced by its period: a morning of hooks costs
    one counting per period, not one per hook."""
    counted = []
    for year, since in await figure_cells.counted_years():
        if await _stale(year, since, ctx.zone):
            await recompute(year, ctx.zone, ctx.clock.now())
            counted.append(year)
    return {"counted": counted}


async def first_count(ctx: ServiceContext, year: int) -> dict[str, Any]:
    """A year nobody counted yet, asked for on the page: counted once across instances
    (a run-once guard per year); an instance that finds the guard taken waits for the
    cells the other one writes."""
    now = ctx.clock.now()
    run = await jobruns.begin("figures-first", str(year), now)
    if run is None:
        return {"skipped": "counted elsewhere"}
    summary = await recompute(year, ctx.zone, now)
    await jobruns.finish(run, ctx.clock.now(), summary)
    return summary


def number(cell: Cell | None, kind: str, lang: str) -> str:
    """A cell as a person reads it: "<5" when suppressed, "—" when empty; a rate in per
    cent, an average with two decimals, a comma as the Polish decimal sign."""
    if cell is None:
        return "—"
    if not cell.shown:
        return SUPPRESSED
    if kind == "rate":
        text = f"{cell.value * 100:.1f}" + (" %" if lang == "pl" else "%")
    elif kind == "average":
        text = f"{cell.value:.2f}"
    else:
        text = str(round(cell.value))
    return text.replace(".", ",") if lang == "pl" else text


def to_csv(figure: Figure, corner: str, lang: str) -> str:
    """The figure as CSV, the same text as the page's table (suppressed cells "<5")."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([corner, *figure.columns])
    for row, cells in figure.rows.items():
        writer.writerow([row or "—", *(number(cells.get(c), figure.kind, lang)
                                       for c in figure.columns)])
    return out.getvalue()
