"""Group commit: many concurrent requests share one transaction.

One commit per HTTP request caps an endpoint at what the disk can sync (about 1,500
commits/s for SQLite on this machine, ~6% of a bare aiohttp handler — shared/NOTES.md).
Requests instead hand their write to a :class:`GroupCommit`; while one batch commits,
the next accumulates, and every request is answered only after *its* batch committed,
so nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tortoise.transactions import in_transaction

from store.errors import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Overloaded(Exception):
    """The queue is full: the caller answers 503 and the client comes back later."""


class GroupCommit(Generic[T, R]):
    """Collects items and applies them in batches, each batch in one transaction.

    `apply(items)` returns one result per item, in order. If a batch fails, its items are
    retried one by one, so one bad item fails alone.
    """

    def __init__(self, apply: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 500,
                 after_commit: Callable[[], None] = lambda: None, max_pending: int = 5000) -> None:
        self._apply = apply
        self._max = max_batch
        #: bounded, so a flood (or a stalled store) costs a 503, not the process's memory
        self._max_pending = max_pending
        self._after_commit = after_commit
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()

    async def submit(self, item: T) -> R:
        if len(self._pending) >= self._max_pending:
            raise Overloaded(f"{len(self._pending)} items are waiting to be committed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        """The committing loop; run it as an owned background task."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    batch = self._pending[: self._max]
                    del self._pending[: self._max]
                    await self._commit(batch)
        finally:
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(RuntimeError("shutting down"))

    async def _commit(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with in_transaction():
                results = await self._apply([item for item, _ in batch])
        except Exception as error:
            if is_transient(error):  # the store is down: every item fails the same way
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(error)
                return
            for single in batch:
                await self._commit([single])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        self._after_commit()
