"""Run-once guards for scheduled jobs: a unique (job, due) row per due time.

Every instance's scheduler fires; the first to insert the row runs the job, the others
see the conflict and skip. A run that died half-way (no `finished_at`) is taken over by
the next run after `stale` — jobs are written so that repeating one sends nothing twice
(their outbox keys and reminder rows are unique), so finishing it is safe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from store.models import JobRun


async def begin(job: str, due: str, now: datetime, stale: timedelta = timedelta(minutes=30)
                ) -> JobRun | None:
    try:
        return await JobRun.create(job=job, due=due, started_at=now)
    except IntegrityError:
        pass
    # take over a run that died: only one taker can move started_at forward
    taken = await JobRun.filter(job=job, due=due, finished_at__isnull=True,
                                started_at__lt=now - stale).update(started_at=now)
    return await JobRun.get(job=job, due=due) if taken else None


async def finish(run: JobRun, now: datetime, summary: dict) -> None:
    await JobRun.filter(id=run.id).update(finished_at=now, summary=summary)
