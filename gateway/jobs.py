"""The scheduled jobs by name: what `emilanowek run-job NAME` and the scheduler run."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from handlers import figures, grades, library
from handlers import retention as retention_rules
from handlers.context import ServiceContext
from handlers.retention import Retention
from store.jobruns import begin, finish

Job = Callable[[ServiceContext], Awaitable[dict[str, Any]]]


async def retention(ctx: ServiceContext, days: int | None = None) -> dict[str, Any]:
    """Forget each kind of personal data after its own period (handlers/retention.py);
    `days` overrides `EMIL_RETENTION_DAYS` for raw inbound and sent messages."""
    rules = replace(ctx.retention or Retention(),
                    messages_days=ctx.retention_days if days is None else days)
    done = await retention_rules.run(ctx, rules, ctx.clock.now())
    return {f"{kind}_deleted": count for kind, count in done.items()}


@dataclass(frozen=True)
class JobSpec:
    """A scheduled job: what runs, when (cron fields or an interval, in the town's time
    zone) and how its due time is named (the run-once guard across instances)."""

    name: str
    run: Job
    cron: dict[str, Any] | None = None
    every: Callable[[Any], float] | None = None  # seconds, from the settings
    due_format: str = "%Y-%m-%d"


def jobs() -> tuple[JobSpec, ...]:
    """The one list of jobs: the scheduler and `emilanowek run-job` read it."""
    from handlers import announcements, attendance, fanout

    return (
        JobSpec("overdue-reminders", library.overdue_run,
                cron={"hour": lambda s: s.overdue_hour}),
        JobSpec("grade-digest", grades.digest_run, cron={"minute": lambda s: 0},
                due_format="%Y-%m-%dT%H"),
        JobSpec("school-digest", fanout.digest_run, cron={"minute": lambda s: 1},
                due_format="%Y-%m-%dT%H"),
        JobSpec("attendance-gather", attendance.gather_run, every=lambda s: 30.0,
                due_format="%Y-%m-%dT%H:%M:%S"),
        JobSpec("scheduled-announcements", announcements.scheduled_run,
                every=lambda s: s.announcement_poll_seconds, due_format="%Y-%m-%dT%H:%M:%S"),
        JobSpec("retention", retention, cron={"hour": lambda s: 3, "minute": lambda s: 30}),
        # the schools' figures (#20): counted at night, and soon after the register changed
        JobSpec("figures", figures.nightly_run, cron={"hour": lambda s: 2, "minute": lambda s: 15}),
        JobSpec("figures-refresh", figures.refresh_run,  # on the clock: once across instances
                cron={"minute": lambda s: f"*/{figures.REFRESH_MINUTES}"},
                due_format="%Y-%m-%dT%H:%M"),
    )


def registry() -> dict[str, Job]:
    return {job.name: job.run for job in jobs()}


async def run_job(ctx: ServiceContext, name: str, due: str | None = None) -> dict[str, Any]:
    """Run one job under its run-once guard. `due` names the due time (the scheduler's fire
    time); a manual run gets a fresh one and always runs."""
    job = registry()[name]
    now = ctx.clock.now()
    run = await begin(name, due or f"manual-{now.isoformat()}-{secrets.token_hex(3)}", now)
    if run is None:
        return {"skipped": "already run for this due time"}
    summary = await job(ctx)
    await finish(run, ctx.clock.now(), summary)
    return summary
