"""A test that dies with its store open must not take the tests after it down.

In CI one PostgreSQL test timed out while it held a store, Tortoise's global context stayed
set, and the 25 tests after it failed to open theirs. The first test here leaves its store
open on purpose, as a failing or timed-out test does; the second must still get a gateway."""

from __future__ import annotations

from store.db import Store
from tests.conftest import Gateway


async def test_a_test_that_leaves_its_store_open(database_url: str) -> None:
    store = Store(database_url)
    await store.open(migrate=False)
    assert await store.ping()
    # no close: as if an assertion or pytest-timeout had stopped the test here


async def test_the_next_test_still_opens_a_store(gw: Gateway) -> None:
    resp = await gw.client.get("/healthz")
    assert resp.status == 200
