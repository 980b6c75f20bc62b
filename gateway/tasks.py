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


async def stop(*tasks: asyncio.Task) -> None:
    for task in tasks:
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
