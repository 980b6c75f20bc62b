"""`EMIL_WORKER_PROCESS`: taking things in and handling them, in two processes.

One Python process uses one core. With the setting on (PostgreSQL only), `serve` keeps
the intake here — SMTP, HTTP API, hooks, the Telegram webhook: everything that must be
durable before it answers — and starts a worker process for the rest: the inbox, the
outbox lanes, the Telegram poller and the scheduler. They share nothing but the database:
the worker takes rows with `SKIP LOCKED` as a second instance would, and the intake wakes
it with `NOTIFY` (`store/wakeup.py`).

The intake supervises the worker: `/healthz` says `"worker": false` while it is down,
it is started again after a growing pause, and on SIGTERM it gets SIGTERM too and is
waited for, so its last batch is marked before the gateway exits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from gateway.config import Settings
from gateway.keys import SETTINGS, STATE
from gateway.logs import setup_logging

log = logging.getLogger(__name__)

#: how long a stopping worker may take to finish its batch before it is killed
STOP_GRACE_SECONDS = 20.0

#: `gateway.app.create_app`, handed in by the app it assembles (this module is below it)
AppFactory = Callable[..., web.Application]


def run_worker(build: AppFactory, settings: dict[str, Any], log_level: int) -> None:
    """The worker process's entry point (spawned: a fresh interpreter, no inherited loop;
    `build` arrives pickled by its name and is imported there)."""
    setup_logging(log_level)
    asyncio.run(_serve_worker(build, Settings(_env_file=None, **settings)))  # type: ignore[call-arg]


async def _serve_worker(build: AppFactory, settings: Settings) -> None:
    runner = web.AppRunner(build(settings, role="worker"), handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker process ready")
    await stop.wait()
    await runner.cleanup()


def worker_process_ctx(build: AppFactory
                       ) -> Callable[[web.Application], AsyncIterator[None]]:
    """The intake's `cleanup_ctx` entry for a worker process whose app `build` makes."""
    def ctx(app: web.Application) -> AsyncIterator[None]:
        return _worker_process(app, build)
    return ctx


async def _worker_process(app: web.Application, build: AppFactory) -> AsyncIterator[None]:
    """Start the worker process, restart it if it dies, stop it with the gateway."""
    settings: Settings = app[SETTINGS]
    spawn = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()

    def start() -> multiprocessing.process.BaseProcess:
        process = spawn.Process(target=run_worker, name="emilanowek-worker",
                                args=(build, settings.model_dump(), level))
        process.start()
        log.info("worker process started (pid %s)", process.pid)
        return process

    current = start()
    app[STATE]["worker"] = True

    async def supervise() -> None:
        nonlocal current
        pause = 1.0
        while True:
            await asyncio.sleep(0.5)
            if current.is_alive():
                continue
            app[STATE]["worker"] = False
            log.error("worker process %s exited with %s; starting another in %.0f s",
                      current.pid, current.exitcode, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)
            current = start()
            app[STATE]["worker"] = True

    supervisor = asyncio.get_running_loop().create_task(supervise())
    yield
    supervisor.cancel()
    await asyncio.gather(supervisor, return_exceptions=True)
    current.terminate()  # SIGTERM: the worker finishes its batch and closes its store
    await asyncio.to_thread(current.join, STOP_GRACE_SECONDS)
    if current.is_alive():
        log.error("worker process %s did not stop in %.0f s; killing it", current.pid,
                  STOP_GRACE_SECONDS)
        current.kill()
        await asyncio.to_thread(current.join)
    app[STATE]["worker"] = False
