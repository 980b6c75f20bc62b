"""apscheduler wiring: the daily and periodic jobs, in the town's time zone.

Each firing is guarded by a (job, due time) row, so with several instances a job runs
once per due time (store/jobruns.py). Triggers get `timezone=` explicitly — a trigger
built on its own otherwise takes the host's zone (shared/NOTES.md).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gateway.jobs import jobs, run_job
from gateway.keys import DISPATCHER, OPTIONS, SERVICES, SETTINGS

log = logging.getLogger(__name__)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    if not app[OPTIONS]["run_workers"]:
        yield
        return
    settings = app[SETTINGS]
    zone = settings.zone
    scheduler = AsyncIOScheduler(timezone=zone)

    def add(name: str, trigger: CronTrigger | IntervalTrigger, due_format: str) -> None:
        async def fire() -> None:
            services = app[SERVICES]
            due = services.clock.now().astimezone(zone).strftime(due_format)
            try:
                summary = await run_job(services, name, due=due)
                log.info("job %s (%s): %s", name, due, summary)
            except Exception:
                log.exception("job %s failed", name)
            app[DISPATCHER].notify()

        scheduler.add_job(fire, trigger, id=name, name=name, coalesce=True,
                          misfire_grace_time=3600, max_instances=1)

    for job in jobs():  # the one jobs table (gateway/jobs.py)
        if job.every is not None:
            trigger = IntervalTrigger(seconds=job.every(settings), timezone=zone)
        else:
            fields = {name: value(settings) for name, value in (job.cron or {}).items()}
            trigger = CronTrigger(timezone=zone, **fields)
        add(job.name, trigger, job.due_format)
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
