"""Issue #18, fault 10: a search is bounded (how many words, and which match as prefixes)
and runs on a connection of its own, so /healthz — and every other use of the store —
answers while a long one is in flight, and /healthz says so when the store does not."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from tortoise.connection import get_connection

from gateway import api
from gateway.keys import STORE
from store import search
from tests.conftest import PG_URL, Gateway
from tests.panel import sign_in, staff_member
from tests.test_supervision import eventually

#: a guard against a test that would hang, not a measure of speed
GUARD = 30.0


def test_a_query_is_a_few_words_and_only_longer_ones_match_as_prefixes() -> None:
    words = search.terms("a b c d e f g h i j")
    assert words == ["a", "b", "c", "d", "e", "f"][:search.MAX_TERMS] and search.MAX_TERMS <= 6
    assert search.terms("Dziura dziura DZIURA, dziura!") == ["dziura"]  # once each
    # Polish keeps its short words ("w", "ul.", a house number), matched whole: a prefix of
    # one or two letters would match nearly every document
    words = search.terms("ul. Kościuszki 5 w Milanówku")
    assert search.fts_expression(words) == '"ul" "kosciuszki"* "5" "w" "milanowku"*'
    assert search.tsquery(words) == "ul & kosciuszki:* & 5 & w & milanowku:*"
    assert search.fts_expression([]) == "" and search.tsquery([]) == ""


async def test_short_words_find_whole_words_only(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/cases", json={
        "subject": "Dziura", "body": "ul. Kościuszki 5 w Milanówku"})
    number = (await resp.json())["number"]
    assert number in await search.matching("kosciuszki 5 w")
    assert number in await search.matching("ul kośc")
    assert await search.matching("k") == []  # no word "k": "kosciuszki" is not a match
    assert await search.matching("u") == []


async def a_clerk_and_a_case(gw: Gateway) -> str:
    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Lampa", "body": "nie świeci"})
    return (await resp.json())["number"]


def a_search(gw: Gateway) -> asyncio.Task:
    return asyncio.ensure_future(gw.client.get("/panel/sprawy", params={"szukaj": "lampa swieci"}))


async def health_answers_first(gw: Gateway, searching: asyncio.Task) -> None:
    health = asyncio.ensure_future(gw.client.get("/healthz"))
    done, _ = await asyncio.wait({health, searching}, timeout=GUARD,
                                 return_when=asyncio.FIRST_COMPLETED)
    assert done == {health}, "/healthz waited behind the search"
    resp = health.result()
    body = await resp.json()
    assert resp.status == 200 and body["store"] is True, body


@asynccontextmanager
async def held(connection) -> AsyncIterator[threading.Event]:  # type: ignore[no-untyped-def]
    """Hold whatever runs next on this SQLite connection inside SQLite (its progress
    handler waits), as a long query would; yields the event set once something is held."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> int:
        entered.set()
        release.wait(GUARD)
        return 0  # go on

    await connection.set_progress_handler(hold, 1)  # in aiosqlite's thread, as it must be
    try:
        yield entered
    finally:
        release.set()
        await connection.set_progress_handler(None, 1)


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's connections")
async def test_health_answers_while_a_search_holds_sqlite(gw: Gateway) -> None:
    reader = gw.app[STORE].reader()
    assert reader is not get_connection("default")  # the search has a connection of its own
    number = await a_clerk_and_a_case(gw)
    await reader.execute_query("SELECT 1")  # opened
    async with held(reader._connection) as entered:
        searching = a_search(gw)
        assert await asyncio.to_thread(entered.wait, GUARD)
        await health_answers_first(gw, searching)
    resp = await searching
    assert resp.status == 200 and number in await resp.text()


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's connections")
async def test_health_says_the_store_is_not_answering(gw: Gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(api, "STORE_PING_SECONDS", 0.1)
    default = get_connection("default")
    async with held(default._connection):
        resp = await asyncio.wait_for(gw.client.get("/healthz"), GUARD)
        body = await resp.json()
        assert resp.status == 503 and body["store"] is False, body

    async def healthy() -> bool:
        return (await gw.client.get("/healthz")).status == 200

    await eventually(healthy)


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's table locks")
async def test_health_answers_while_a_search_waits_in_postgres(gw: Gateway) -> None:
    number = await a_clerk_and_a_case(gw)
    other = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        locking = other.transaction()
        await locking.start()
        await other.execute("LOCK TABLE case_search IN ACCESS EXCLUSIVE MODE")
        searching = a_search(gw)

        async def search_waits() -> bool:
            await other.execute("SELECT pg_stat_clear_snapshot()")  # read anew in a transaction
            return bool(await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query LIKE '%case_search%'"))

        await eventually(search_waits)
        await health_answers_first(gw, searching)
        await locking.commit()
    finally:
        await other.close()
    resp = await searching
    assert resp.status == 200 and number in await resp.text()


async def test_health_answers_when_the_store_is_held_after_its_ping(gw: Gateway, monkeypatch  # type: ignore[no-untyped-def]
                                                                   ) -> None:
    """Review of #18, fault 10: after the bounded ping, /healthz counted the unread mail
    with no bound of its own, so a store held up just after the ping (a long write on
    SQLite's one connection, a lock on PostgreSQL) kept the check waiting past any load
    balancer's timeout. The count reads on the reader (SQLite) and within the same bound."""
    monkeypatch.setattr(api, "STORE_PING_SECONDS", 0.5)

    async def answered(self, timeout: float | None = None) -> bool:  # type: ignore[no-untyped-def]
        return True  # the ping got through just before the store was held

    monkeypatch.setattr(type(gw.app[STORE]), "ping", answered)
    if PG_URL:
        other = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
        try:
            locking = other.transaction()
            await locking.start()
            await other.execute("LOCK TABLE raw_inbound IN ACCESS EXCLUSIVE MODE")
            resp = await asyncio.wait_for(gw.client.get("/healthz"), GUARD)
            await locking.rollback()
        finally:
            await other.close()
    else:
        async with held(get_connection("default")._connection):
            resp = await asyncio.wait_for(gw.client.get("/healthz"), GUARD)
    assert resp.status in (200, 503), await resp.text()
