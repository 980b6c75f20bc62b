"""The store under cancellation: a worker stopped mid-transaction must not wedge the rest."""

from __future__ import annotations

import asyncio

import pytest
from tortoise.transactions import in_transaction

from store.models import Counter
from tests.conftest import PG_URL, Gateway


@pytest.mark.skipif(PG_URL is not None, reason="SQLite's single-connection transaction lock")
async def test_cancel_while_a_transaction_begins_releases_the_connection(gw: Gateway) -> None:
    """Tortoise 1.1 takes SQLite's transaction lock, then awaits BEGIN; a cancellation in
    that await used to keep the lock for good (store/sqlite_fix.py)."""
    entered = asyncio.Event()

    async def worker() -> None:
        async with in_transaction():
            entered.set()
            await Counter.create(name="never", value=1)

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)  # the task now holds the lock and waits for BEGIN
    assert not entered.is_set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def next_transaction() -> None:
        async with in_transaction():
            await Counter.create(name="after", value=2)

    await asyncio.wait_for(next_transaction(), timeout=5)
    assert await Counter.filter(name="after").exists()
    assert not await Counter.filter(name="never").exists()
