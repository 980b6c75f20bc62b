"""Owned background tasks: started by a cleanup_ctx, supervised, cancelled on stop.

Every long-running part of the gateway (inbox, each outbox lane, the Telegram poller and
leadership, the publisher, the commit queues) runs under :func:`supervise`: if it raises,
the failure is logged once with its cause, the part is marked down in :class:`Health`
(so `/healthz` answers 503 naming it), a restart is counted, and the part is started
again after a capped, jittered backoff. A database that was locked for a dozen seconds
or a PostgreSQL restart therefore costs a pause, never a silent stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from store.errors import is_transient

log = logging.getLogger(__name__)


def _report(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def start(name: str, coro: Awaitable[None]) -> asyncio.Task:
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    task.add_done_callback(_report)
    return task


@dataclass
class PartState:
    up: bool = True
    restarts: int = 0
    last_error: str = ""


@dataclass
class Health:
    """The background parts of this process and whether each is running now."""

    parts: dict[str, PartState] = field(default_factory=dict)
    #: called with the part's name on every restart (a Prometheus counter)
    on_restart: Callable[[str], None] = lambda name: None

    def register(self, name: str) -> None:
        self.parts.setdefault(name, PartState())

    def down(self, name: str, error: BaseException) -> None:
        state = self.parts.setdefault(name, PartState())
        state.up, state.restarts = False, state.restarts + 1
        state.last_error = f"{type(error).__name__}: {str(error)[:200]}"
        self.on_restart(name)

    def up(self, name: str) -> None:
        self.parts.setdefault(name, PartState()).up = True

    def forget(self, name: str) -> None:
        self.parts.pop(name, None)

    def failing(self) -> list[str]:
        return sorted(name for name, state in self.parts.items() if not state.up)


class Woken:
    """A background part that works when woken — by whoever stored work for it in this
    process (`notify`) or, with `EMIL_WORKER_PROCESS`, by a `NOTIFY` from the other one
    (`elsewhere` passes it on) — and polls as well, so work stored just before a crash is
    done after the restart: the inbox and the sign-in worker."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        #: with `EMIL_WORKER_PROCESS`, the intake's part wakes the worker process's one
        self.elsewhere: Callable[[], None] = lambda: None
        #: called after every round that reached the store (the supervisor's "I am up")
        self.beat: Callable[[], None] = lambda: None

    def notify(self) -> None:
        self.wake.set()
        self.elsewhere()

    async def idle(self, seconds: float) -> None:
        """Until woken, or `seconds` at most."""
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass


def backoff_delay(failures: int, base: float, cap: float) -> float:
    """Capped exponential backoff with jitter (half to all of the step), so that parts
    that failed together do not retry together."""
    step = min(cap, base * 2 ** max(0, failures - 1))
    return random.uniform(step / 2, step)


async def _supervised(name: str, factory: Callable[[], Awaitable[None]], health: Health,
                      base: float, cap: float, settle: float | None) -> None:
    loop = asyncio.get_running_loop()
    failures = 0
    health.register(name)
    while True:
        started = loop.time()
        run = asyncio.ensure_future(factory())
        try:
            if failures and settle is not None:
                # marked up again only once it has run for a while without failing
                done, _ = await asyncio.wait({run}, timeout=settle)
                if not done:
                    health.up(name)
            await run
            raise RuntimeError("returned; a background part is meant to run until stopped")
        except asyncio.CancelledError:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
            raise
        except Exception as error:  # noqa: BLE001 - every failure is a restart, logged here
            if loop.time() - started > cap:
                failures = 0  # it had been running well: start the backoff over
            failures += 1
            health.down(name, error)
            delay = backoff_delay(failures, base, cap)
            if is_transient(error):
                log.warning("%s: store or network unavailable (%s); restarting in %.1f s",
                            name, health.parts[name].last_error, delay)
            else:
                log.error("%s failed; restarting in %.1f s", name, delay, exc_info=error)
            await asyncio.sleep(delay)


def supervise(name: str, factory: Callable[[], Awaitable[None]], health: Health, *,
              base: float = 0.5, cap: float = 30.0, settle: float | None = 1.0) -> asyncio.Task:
    """Run `factory()` for good: restarted after any failure, with capped backoff.

    After a failure the part counts as up again once it has run `settle` seconds without
    failing; a part that works in rounds passes `settle=None` and reports each good round
    with `health.up(name)` instead (a worker blocked on a locked store is not "up")."""
    return start(name, _supervised(name, factory, health, base, cap, settle))


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

