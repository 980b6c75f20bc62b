"""The console's page of the schools' figures (issue #20), for the education office:
each figure (handlers/figures.py) as an SVG chart drawn on the server by pygal, the same
numbers as a table beside it, and a CSV download.

The console's CSP allows no script, and pygal always writes one (its tooltips' config)
even with `js=[]`: the chart is built as pygal's element tree and every `<script>` is
taken out before it is written, so the page carries none. Suppressed cells are not given
to pygal at all (a gap in the chart), so their numbers cannot leak through the SVG.

The page counts nothing (#20): it reads the cells the figures jobs stored
(store/figure_cells.py), one indexed query, and says when they were counted ("stan na").
Drawing six charts takes pygal longer than the rest of the page, so the drawn sections are
kept per (year, language) with the `computed_at` they were drawn from; a new counting is
drawn in the background while the page still shows the last drawing and its "as of".
A year never counted is counted in the background (started here, once across
instances) while the page says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pygal
from aiohttp import web
from markupsafe import Markup
from pygal.etree import etree
from pygal.style import Style

from gateway.downloads import file_response
from gateway.panel import _lang, _need, _now, _page, _services
from handlers import figures
from handlers.figures import Figure
from handlers.i18n import short_datetime
from handlers.text import whole_number
from store import figure_cells

log = logging.getLogger(__name__)

#: pygal appends a `sys.meta_path` finder for its map plugins (`pygal.maps.*`, unused here)
#: that has only the `find_module` Python 3.12 dropped: every later failed import then warns
#: (ImportWarning) or, on 3.12, errs. Taken out again at once.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

routes = web.RouteTableDef()  # relative to the console's prefix, /panel (gateway/console.py)

#: what was drawn, per (year, language) and per (year, "figures"): (computed_at, kept)
CACHE = web.AppKey("figures_cache", dict)
#: the background countings of never-counted years this process started, by year
COUNTING = web.AppKey("figures_counting", dict)
#: the background drawings of a new counting's charts, by (year, language)
DRAWING = web.AppKey("figures_drawing", dict)


def setup(console: web.Application) -> None:
    """The page's state on the console, and the owner of its background countings."""
    console[CACHE] = {}
    console[COUNTING] = {}
    console[DRAWING] = {}
    console.cleanup_ctx.append(_background)


async def _background(console: web.Application) -> AsyncIterator[None]:
    """Countings and drawings still running at shutdown are cancelled and awaited (a
    counting cut short writes nothing: the year's cells are replaced in one transaction)."""
    yield
    running = [t for tasks in (console[COUNTING], console[DRAWING])
               for t in tasks.values() if not t.done()]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


#: (title pl, title en, corner pl, corner en) of each figure, in page order
TITLES = {
    "attendance_schools": ("Frekwencja szkół w tygodniach", "Attendance by school and week",
                           "Szkoła", "School"),
    "attendance_classes": ("Frekwencja klas w tygodniach", "Attendance by class and week",
                           "Klasa", "Class"),
    "late": ("Spóźnienia klas w miesiącach", "Late arrivals by class and month",
             "Klasa", "Class"),
    "grades": ("Średnie ocen według przedmiotu i klasy", "Grade averages by subject and class",
               "Przedmiot", "Subject"),
    "remarks": ("Uwagi według rodzaju i klasy", "Remarks by kind and class", "Rodzaj", "Kind"),
    "trend": ("Średnie ocen szkół w ciągu roku", "Grade averages of schools over the year",
              "Szkoła", "School"),
}
_LINES = {"attendance_schools", "attendance_classes", "trend"}
_AXES = {"rate": tuple(range(0, 101, 20)), "average": tuple(range(1, 7))}
_KINDS = {"positive": ("pozytywne", "positive"), "neutral": ("neutralne", "neutral"),
          "negative": ("negatywne", "negative")}
#: dark enough on white for text (WCAG 1.4.3) and told apart by more than hue
_STYLE = Style(background="white", plot_background="white", foreground="#222",
               foreground_strong="#000", foreground_subtle="#555",
               font_family="system-ui, sans-serif",
               colors=("#1f5fa8", "#b34700", "#2e7d32", "#6a1b9a", "#8d6e00", "#00695c"))


def count_in_background(request: web.Request, year: int) -> asyncio.Task:
    """Start counting a never-counted year, once in this process (and, by its run-once
    guard, once across instances); the task is the console's, cancelled at shutdown."""
    counting = request.app[COUNTING]
    task = counting.get(year)
    if task is None or task.done():
        services = _services(request)

        async def run() -> None:
            try:
                log.info("figures %s: %s", year, await figures.first_count(services, year))
            except Exception:
                log.exception("figures %s: counting failed", year)

        task = counting[year] = asyncio.ensure_future(run())
        task.set_name(f"figures-{year}")
    return task


def _draw_in_background(console: web.Application, year: int, lang: str) -> None:
    """Draw a new counting's charts while the page still shows the last drawing (with
    its own "as of"): drawing six charts of 80 classes takes pygal seconds, and the
    refresh job may count every few minutes; only an instance's very first opening of a
    year waits for the drawing."""
    drawing = console[DRAWING]
    task = drawing.get((year, lang))
    if task is None or task.done():
        async def run() -> None:
            try:
                await _kept(console, year, lang, wait=True)
            except Exception:
                log.exception("figures %s (%s): drawing failed", year, lang)

        task = drawing[(year, lang)] = asyncio.ensure_future(run())
        task.set_name(f"figures-draw-{year}-{lang}")


async def _kept(console: web.Application, year: int, lang: str, wait: bool = False
                ) -> tuple[datetime, Any] | None:
    """The year's figures (`lang` "figures") or a language's page sections, charts
    drawn, as of the latest counting (or, unless `wait`, the last drawing while the
    latest is drawn); None when the year was never counted."""
    when = await figure_cells.computed_at(year)
    if when is None:
        return None
    cache = console[CACHE]
    kept = cache.get((year, lang))
    if kept and kept[0] == when:
        return kept
    if kept and lang != "figures" and not wait:
        _draw_in_background(console, year, lang)
        return kept
    # one drawing per key at a time (review of #20: every cold opening drew again)
    lock = cache.setdefault(("lock", year, lang), asyncio.Lock())
    async with lock:
        kept = cache.get((year, lang))
        if kept and kept[0] == when:
            return kept
        if lang == "figures":
            # the mark and the cells in one query: of one counting, even if a new one
            # was written since `computed_at` was read
            read, rows = await figure_cells.read_year(year)
            if read is None:
                return None
            kept = (read, figures.from_rows(rows))
        else:  # pygal draws in a thread: seconds of drawing would stop the event loop
            found = await _kept(console, year, "figures", wait=True)
            if found is None:
                return None
            kept = (found[0], await asyncio.to_thread(_sections, found[1], lang))
        cache[(year, lang)] = kept
    return kept


def _sections(found: list[Figure], lang: str) -> list[dict[str, Any]]:
    shown = []
    for figure in found:
        title_pl, title_en, corner_pl, corner_en = TITLES[figure.key]
        title = title_pl if lang == "pl" else title_en
        shown.append({"key": figure.key, "title": title,
                      "corner": corner_pl if lang == "pl" else corner_en,
                      "chart": chart(figure, title, lang) if figure.rows else None,
                      **_table(figure, lang)})
    return shown


def _year(request: web.Request) -> int:
    current = figures.school_year_of(_now(request).date())
    year = whole_number(request.query.get("rok"), low=2000, high=current + 1)
    return current if year is None else year


def _row_label(figure: Figure, row: str, lang: str) -> str:
    if figure.key == "remarks":
        return _KINDS.get(row, (row, row))[0 if lang == "pl" else 1]
    return row or "—"


def chart(figure: Figure, title: str, lang: str) -> Markup:
    """The figure as inline SVG with no script; suppressed cells are gaps."""
    kind = pygal.Line if figure.key in _LINES else pygal.Bar
    scale = 100.0 if figure.kind == "rate" else 1.0
    drawn = kind(js=[], disable_xml_declaration=True, width=900, height=380, style=_STYLE,
                 x_label_rotation=60 if len(figure.columns) > 8 else 0,
                 show_legend=len(figure.rows) <= 16, legend_at_bottom=True,
                 value_formatter=lambda v: f"{v:g}",  # the axis: whole numbers
                 formatter=lambda v: figures.number(  # the values drawn
                     figures.Cell(v / scale, figures.MIN_PUPILS), figure.kind, lang),
                 truncate_label=-1, show_minor_x_labels=len(figure.columns) <= 20,
                 x_labels_major_every=max(1, len(figure.columns) // 10))
    drawn.x_labels = figure.columns
    if figure.kind in _AXES:  # whole numbers on the axis, never a cell's exact figure
        drawn.range = _AXES[figure.kind][0], _AXES[figure.kind][-1]
        drawn.y_labels = [{"label": f"{v} %" if figure.kind == "rate" else str(v), "value": v}
                          for v in _AXES[figure.kind]]
    for row, cells in figure.rows.items():
        values = [cells[c].value * scale if c in cells and cells[c].shown else None
                  for c in figure.columns]
        drawn.add(_row_label(figure, row, lang), values)
    tree = drawn.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if str(child.tag).endswith("script"):
                parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", title)
    # pygal's tree is lxml's when lxml is installed (signxml brings it), ElementTree's
    # otherwise: its own `etree` writes either
    return Markup(etree.tostring(tree, encoding="unicode"))


def _table(figure: Figure, lang: str) -> dict[str, Any]:
    return {"columns": figure.columns,
            "rows": [(_row_label(figure, row, lang),
                      [figures.number(cells.get(c), figure.kind, lang) for c in figure.columns])
                     for row, cells in figure.rows.items()]}


def _counting_page(request: web.Request, year: int, status: int = 200) -> web.Response:
    count_in_background(request, year)
    response = _page(request, "figures", status=status, figures=None, year=year,
                     min_pupils=figures.MIN_PUPILS, as_of=None)
    response.headers["Retry-After"] = "30"
    return response


@routes.get("/szkoly")
async def figures_page(request: web.Request) -> web.Response:
    _need(request, "figures")
    lang, year = _lang(request), _year(request)
    kept = await _kept(request.app, year, lang)
    if kept is None:
        return _counting_page(request, year)
    as_of = short_datetime(kept[0], lang, _services(request).zone)
    return _page(request, "figures", figures=kept[1], year=year, as_of=as_of,
                 min_pupils=figures.MIN_PUPILS)


@routes.get("/szkoly/{key}.csv")
async def figures_csv(request: web.Request) -> web.Response:
    _need(request, "figures")
    lang, year, key = _lang(request), _year(request), request.match_info["key"]
    if key not in TITLES:
        raise web.HTTPNotFound()
    kept = await _kept(request.app, year, "figures")
    if kept is None:  # not counted yet: the page saying so, and no file
        return _counting_page(request, year, status=503)
    found = next(f for f in kept[1] if f.key == key)
    corner = TITLES[key][2 if lang == "pl" else 3]
    relabelled = Figure(found.key, found.kind, found.columns,
                        {_row_label(found, r, lang): c for r, c in found.rows.items()})
    return file_response(figures.to_csv(relabelled, corner, lang),
                         f"{key}-{year}-{year + 1}.csv", content_type="text/csv")
