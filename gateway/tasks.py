"""Owned background tasks: started by a cleanup_ctx, failures logged, cancelled on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)


def _report(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def start(name: str, coro: Awaitable[None]) -> asyncio.Task:
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    task.add_done_callback(_report)
    return task


async def stop(*tasks: asyncio.Task, grace: float = 3.0) -> None:
    """Cancel and wait. A task still running after `grace` seconds is named in the log and
    cancelled again: a cancellation can be lost (a library that catches it, or one landing
    just as an awaited future completes), and a worker loop would then run on. The
    warning is how the SQLite lock leak in store/sqlite_fix.py was found."""
    for task in tasks:
        task.cancel()
    pending = {task for task in tasks if not task.done()}
    while pending:
        _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            log.warning("task %s outlived its cancellation; cancelling it again", task.get_name())
            task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def background(
    name: str, factory: Callable[[web.Application], Awaitable[None] | None]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry that runs `factory(app)` as a task for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        coro = factory(app)
        task = start(name, coro) if coro is not None else None
        yield
        if task is not None:
            await stop(task)

    return ctx
