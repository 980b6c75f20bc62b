"""How long each kind of personal data is kept, and the job that forgets it.

One entry per kind in :data:`KINDS` — what it is, why it is kept, the setting that
decides for how long — and the README's "What is stored" table says the same. The
`retention` job (daily, 03:30) applies every entry; each is safe to run any number of
times. The audit trail is not in the table: it is the record of who did what and is kept.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise.functions import Max
from tortoise.transactions import in_transaction

from handlers import rodo
from store import search
from store.models import (
    AddressClaim,
    Attachment,
    Attendance,
    AttendanceBatch,
    Case,
    Conversation,
    DigestItem,
    Grade,
    GradeNotice,
    Homework,
    HookDelivery,
    IdempotentRequest,
    JobRun,
    LinkCode,
    Loan,
    LoanReminder,
    Outbox,
    RawInbound,
    Remark,
    Renewal,
    SchoolMessage,
    SentMail,
    SignInLink,
    StaffSession,
)
from store.rows import delete_found

CLOSED = ("resolved", "rejected")
#: rows that carry payloads (raw mail up to the SMTP size limit, attachments, rendered
#: messages) deleted at a time, each part its own commit: with `secure_delete` zeroing
#: them, ~15 ms a megabyte on 2 cores, so a part of typical mail stays in the tens of ms
BLOB_ROWS = 20
#: closed cases anonymised in one transaction
CASES_AT_ONCE = 500


@dataclass(frozen=True)
class Retention:
    """Days each kind is kept (settings `EMIL_RETENTION_DAYS`, `EMIL_RETAIN_*`)."""

    messages_days: int = 365
    closed_case_days: int = 730
    attachment_days: int = 365
    loan_days: int = 90
    conversation_days: int = 7
    spool_days: int = 30
    session_days: int = 30
    job_run_days: int = 30
    hook_days: int = 7
    link_code_days: int = 30
    #: the school year starts on this day (MM-DD); school records of earlier years go
    school_year_start: str = "09-01"
    spool_dir: str = ""


#: kind → (what, why, setting); the README's table lists the same
KINDS = {
    "raw_inbound": ("raw mail and Telegram updates as received", "proof of what arrived; "
                    "reprocessing after a fault", "EMIL_RETENTION_DAYS"),
    "sent_messages": ("messages we sent (outbox rows) and their Message-IDs", "delivery "
                      "evidence; a reply threaded to our mail proves its sender",
                      "EMIL_RETENTION_DAYS"),
    "closed_cases": ("personal data of closed cases: requester, body, their messages",
                     "answering follow-ups; the case record itself is kept",
                     "EMIL_RETAIN_CLOSED_CASE_DAYS"),
    "attachments": ("attachments of closed cases", "the clerk's work on the case",
                    "EMIL_RETAIN_ATTACHMENT_DAYS"),
    "school": ("grades, attendance, remarks, homework, school messages and their notices",
               "telling guardians during the school year", "EMIL_SCHOOL_YEAR_START"),
    "loans": ("returned loans, reminders and renewals", "reminders and renewals",
              "EMIL_RETAIN_LOAN_DAYS"),
    "conversations": ("unfinished bot and mail dialogues", "continuing a dialogue",
                      "EMIL_RETAIN_CONVERSATION_DAYS"),
    "spool": ("the .eml spool of sent mail (no relay configured)", "development, "
              "inspection", "EMIL_RETAIN_SPOOL_DAYS"),
    "console_sessions": ("console sign-in links and ended sessions", "security",
                         "EMIL_RETAIN_SESSION_DAYS"),
    "link_codes": ("Telegram link codes, used or expired", "linking a chat to a person",
                   "EMIL_RETAIN_LINK_CODE_DAYS"),
    "hook_ids": ("received hooks' webhook-ids and our answers", "a sender's retry of a "
                 "hook is answered as the first time and not applied again",
                 "EMIL_RETAIN_HOOK_DAYS"),
    "job_runs": ("scheduled job runs and their summaries", "a job runs once across "
                 "instances; the console shows the last run", "EMIL_RETAIN_JOB_RUN_DAYS"),
}


def school_year_began(today: date, start: str) -> date:
    """The first day of the school year `today` is in (e.g. 1 September)."""
    month, day = (int(x) for x in start.split("-"))
    began = date(today.year, month, day)
    return began if today >= began else date(today.year - 1, month, day)


async def run(ctx: Any, rules: Retention, now: datetime) -> dict[str, int]:
    """Forget every kind past its period; returns how many rows (or files) each lost.

    Every kind goes through `delete_found`: a part of rows at a time, each part its own
    commit. One DELETE for a whole kind held SQLite's only write connection for all of
    it — with `secure_delete` on (store/db.py) 100 MB of old mail took ~1.5 s, every
    other write of the process waiting (review of #18). Rows that carry payloads (raw
    mail, attachments, the outbox's rendered messages) go `BLOB_ROWS` at a time."""
    done: dict[str, int] = {}
    cutoff = now - timedelta(days=rules.messages_days)
    # unread mail still waiting for a clerk is kept until one has dealt with it
    done["raw_inbound"] = await delete_found(RawInbound.filter(received_at__lt=cutoff).exclude(
        status__in=("pending", "unread")), BLOB_ROWS)
    done["sent_messages"] = await delete_found(Outbox.filter(
        created_at__lt=cutoff, status__in=("sent", "delivered", "failed", "cancelled", "bounced")), BLOB_ROWS)
    done["sent_message_ids"] = await delete_found(SentMail.filter(created_at__lt=cutoff))
    # stored idempotent answers may hold an access code: a day is their whole use
    done["idempotent_answers"] = await delete_found(IdempotentRequest.filter(
        created_at__lt=now - timedelta(days=1)))
    done["closed_cases"] = await _closed_cases(now - timedelta(days=rules.closed_case_days))
    closed_before = now - timedelta(days=rules.attachment_days)
    done["attachments"] = await delete_found(Attachment.filter(
        case__status__in=CLOSED, case__updated_at__lt=closed_before), BLOB_ROWS)
    done["school"] = await _school(school_year_began(now.astimezone(ctx.zone).date(),
                                                     rules.school_year_start), ctx)
    loan_cutoff = now - timedelta(days=rules.loan_days)
    # a loan's reminders before the loan (they refer to it)
    done["loans"] = (
        await delete_found(LoanReminder.filter(loan__returned=True,
                                               loan__updated_at__lt=loan_cutoff))
        + await delete_found(Loan.filter(returned=True, updated_at__lt=loan_cutoff))
        + await delete_found(Renewal.filter(created_at__lt=loan_cutoff)))
    done["conversations"] = await delete_found(Conversation.filter(
        updated_at__lt=now - timedelta(days=rules.conversation_days)))
    done["spool"] = _spool(rules.spool_dir, rules.spool_days)
    session_cutoff = now - timedelta(days=rules.session_days)
    done["console_sessions"] = (
        await delete_found(SignInLink.filter(expires_at__lt=session_cutoff))
        + await delete_found(StaffSession.filter(last_seen_at__lt=session_cutoff)))
    done["link_codes"] = await delete_found(
        LinkCode.filter(expires_at__lt=now - timedelta(days=rules.link_code_days)))
    # a phone's claims with them: after a day they no longer count towards its limits
    done["address_claims"] = await delete_found(
        AddressClaim.filter(expires_at__lt=now - timedelta(days=rules.link_code_days)))
    done["hook_ids"] = await delete_found(
        HookDelivery.filter(received_at__lt=now - timedelta(days=rules.hook_days)))
    # the console shows each job's last run, however long ago (a job may be idle)
    last_runs = await JobRun.annotate(last=Max("id")).group_by("job").values_list(
        "last", flat=True)
    done["job_runs"] = await delete_found(JobRun.filter(
        started_at__lt=now - timedelta(days=rules.job_run_days)).exclude(id__in=last_runs))
    return done


async def _closed_cases(before: datetime) -> int:
    """Closed cases untouched since `before` lose their personal data (as on erasure);
    the record — number, category, status, dates, the office's notes — stays."""
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    numbers: list[str] = await Case.filter(status__in=CLOSED, updated_at__lt=before).exclude(  # type: ignore[assignment]
        body=rodo.ERASED).values_list("number", flat=True)
    for start in range(0, len(numbers), CASES_AT_ONCE):
        async with in_transaction():
            await rodo.anonymise_cases(numbers[start:start + CASES_AT_ONCE])
    if numbers:  # once a run, after the commits: the index merged in short steps
        await search.purge()
    return len(numbers)


async def _school(began: date, ctx: Any) -> int:
    """Records of earlier school years go (grades, attendance, remarks, homework, school
    messages, the notices waiting for them), the notices before what they are about."""
    start = datetime.combine(began, datetime.min.time(), tzinfo=ctx.zone)
    return (await delete_found(GradeNotice.filter(created_at__lt=start))
            + await delete_found(Grade.filter(recorded_at__lt=start))
            + await delete_found(Attendance.filter(date__lt=began))
            + await delete_found(AttendanceBatch.filter(due_at__lt=start))
            + await delete_found(Remark.filter(recorded_at__lt=start))
            + await delete_found(Homework.filter(due__lt=began))
            + await delete_found(SchoolMessage.filter(created_at__lt=start))
            + await delete_found(DigestItem.filter(created_at__lt=start)))


def _spool(folder: str, days: int) -> int:
    """Sent mail written as .eml files (no relay) older than `days`."""
    if not folder or not os.path.isdir(folder):
        return 0
    limit = time.time() - days * 86400
    removed = 0
    for path in Path(folder).glob("*.eml"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another instance got there first
            continue
    return removed
