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


@pytest.mark.skipif(PG_URL is None, reason="row locks across connections: PostgreSQL")
async def test_two_instances_never_take_the_same_inbound_rows(gw: Gateway) -> None:
    """While one transaction holds pending rows, another's `take` skips them."""
    from datetime import datetime, timezone

    from gateway.inbox import take
    from store.models import RawInbound

    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    rows = [await RawInbound.create(channel="email", external_id=f"x{n}", payload=b"",
                                    received_at=now) for n in range(3)]
    ids = [r.id for r in rows]
    holding, release = asyncio.Event(), asyncio.Event()

    async def first() -> set[int]:
        async with in_transaction():
            got = await take(ids[:2])
            holding.set()
            await release.wait()
            return got

    task = asyncio.create_task(first())
    await holding.wait()
    async with in_transaction():
        second = await take(ids)
    release.set()
    assert await task == set(ids[:2])
    assert second == {ids[2]}
