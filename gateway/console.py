"""The staff console as an aiohttp application of its own, mounted at `/panel`.

Its pages (gateway/panel.py: signing in, cases, the audit trail; panel_sections.py:
announcements, the library, people, health; panel_unread.py: mail nobody could read;
panel_figures.py: the schools' figures)
are routed here, under the console's own middleware (`panel.console`: the session,
refusals as pages), which no other part of the gateway runs. Its stylesheet is served
from `/static/panel.css`. The gateway's application adds it with `setup`.
"""

from __future__ import annotations

from aiohttp import web

from gateway import panel, panel_figures, panel_sections, panel_unread


def create() -> web.Application:
    """The console's application: every page of it, and its middleware."""
    console = web.Application(middlewares=[panel.console])
    console.router.add_routes(panel.routes)
    console.router.add_routes(panel_sections.routes)
    console.router.add_routes(panel_unread.routes)
    console.router.add_routes(panel_figures.routes)
    panel_figures.setup(console)
    return console


def setup(app: web.Application) -> None:
    """Mount the console at `/panel` of the gateway's application."""
    app.add_subapp("/panel", create())
    app.router.add_get("/static/panel.css", panel.stylesheet)
