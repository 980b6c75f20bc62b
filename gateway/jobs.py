"""The scheduled jobs by name: what `emilanowek run-job NAME` and the scheduler run."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from tortoise.transactions import in_transaction

from handlers import grades, library
from handlers.context import ServiceContext
from store.jobruns import begin, finish
from store.models import IdempotentRequest, Outbox, RawInbound, SentMail

Job = Callable[[ServiceContext], Awaitable[dict[str, Any]]]


async def retention(ctx: ServiceContext, days: int | None = None) -> dict[str, Any]:
    """Forget what is no longer needed: handled raw inbound and delivered outbox rows
    after `EMIL_RETENTION_DAYS`, the record of our Message-IDs with them, and stored
    idempotent answers (which may hold an access code) after their 24 hours."""
    now = ctx.clock.now()
    cutoff = now - timedelta(days=ctx.retention_days if days is None else days)
    async with in_transaction():
        raw = await RawInbound.filter(received_at__lt=cutoff).exclude(status="pending").delete()
        out = await Outbox.filter(created_at__lt=cutoff, status__in=("sent", "failed")).delete()
        sent = await SentMail.filter(created_at__lt=cutoff).delete()
        answers = await IdempotentRequest.filter(created_at__lt=now - timedelta(days=1)).delete()
    return {"raw_inbound_deleted": raw, "outbox_deleted": out, "sent_mail_ids_deleted": sent,
            "idempotent_answers_deleted": answers}


def registry() -> dict[str, Job]:
    from handlers import announcements

    return {
        "overdue-reminders": library.overdue_run,
        "grade-digest": grades.digest_run,
        "scheduled-announcements": announcements.scheduled_run,
        "retention": retention,
    }


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
