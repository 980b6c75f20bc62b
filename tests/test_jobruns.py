"""Run-once guards and leadership: the database decides, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

from store import jobruns, leadership
from tests.conftest import Gateway


async def test_a_due_time_runs_once_and_a_dead_run_is_taken_over(gw: Gateway) -> None:
    now = gw.clock.now()
    first = await jobruns.begin("overdue-reminders", "2026-11-25", now)
    assert first is not None
    assert await jobruns.begin("overdue-reminders", "2026-11-25", now) is None  # another instance
    # the first runner died without finishing; after the stale period the next one takes over
    later = now + timedelta(minutes=31)
    taken = await jobruns.begin("overdue-reminders", "2026-11-25", later)
    assert taken is not None and taken.id == first.id
    await jobruns.finish(taken, later, {"messages": 3})
    assert await jobruns.begin("overdue-reminders", "2026-11-25", later + timedelta(hours=2)) is None


async def test_leadership_passes_on_when_the_lease_runs_out(gw: Gateway) -> None:
    now, ttl = gw.clock.now(), timedelta(seconds=15)
    assert await leadership.acquire("telegram", "node-a", now, ttl)
    assert not await leadership.acquire("telegram", "node-b", now + timedelta(seconds=5), ttl)
    assert await leadership.acquire("telegram", "node-a", now + timedelta(seconds=5), ttl)  # renew
    assert not await leadership.acquire("telegram", "node-b", now + timedelta(seconds=19), ttl)
    assert await leadership.acquire("telegram", "node-b", now + timedelta(seconds=21), ttl)
    await leadership.release("telegram", "node-b", now + timedelta(seconds=22))
    assert await leadership.acquire("telegram", "node-a", now + timedelta(seconds=22), ttl)
