"""Attendance: absences, lateness and excuses from the school register.

`POST /hooks/register/attendance` and `emilanowek import attendance`. `present` is
stored and never told. Entries of one child arriving within
`EMIL_ATTENDANCE_GATHER_MINUTES` are gathered into one message per guardian and child
(an `AttendanceBatch` due when the window closes, sent by the `attendance-gather` job,
which the scheduler runs every half minute); with 0 each batch is told at once. An
absence that was told and is now excused is told again as a correction. `/obecnosci`
shows the last two weeks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out
from handlers.message import InvalidInput, Reply
from store.models import Attendance, AttendanceBatch, Student
from store.rows import change_in, read_in
from store.upsert import Upserts

STATUSES = ("absent", "late", "excused", "present")
TOLD = ("absent", "late", "excused")


@dataclass
class AttendanceIn:
    id: str
    student: str
    date: date
    period: int
    status: str
    subject: str | None


def parse_batch(body: dict[str, Any]) -> list[AttendanceIn]:
    parsed = {}
    for n, raw in enumerate(school.items_of(body, "attendance")):
        where = f"attendance[{n}]"
        item = school.record(raw, where)
        period = item.get("period")
        if isinstance(period, bool) or not isinstance(period, int) or not 0 <= period <= 20:
            raise InvalidInput(f"{where}.period", f"'{where}.period' must be a lesson number 0–20")
        entry = AttendanceIn(
            id=school.text(item, "id", where, Attendance, "id") or "",
            student=school.text(item, "student", where, Attendance, "student_id") or "",
            date=school.day(item, "date", where), period=period,
            status=school.choice(item, "status", where, STATUSES),
            subject=school.text(item, "subject", where, Attendance, "subject", required=False))
        parsed[entry.id] = entry
    return list(parsed.values())


async def apply_batches(ctx: ServiceContext, batches: list[list[AttendanceIn]]
                        ) -> list[dict[str, Any]]:
    """Store the entries, one answer per batch (their rows read and inserted together,
    store/upsert.py); those to tell join their child's open gathering batch."""
    now = ctx.clock.now()
    everything = [e for batch in batches for e in batch]
    students = await school.students_by_id({e.student for e in everything})
    rows = await Upserts.read(Attendance, [e.id for e in everything if e.student in students],
                              now)
    answers: list[dict[str, Any]] = []
    tellings: list[dict[str, list[str]]] = []
    for batch in batches:
        to_tell: dict[str, list[str]] = defaultdict(list)
        known = [e for e in batch if e.student in students]
        for entry in known:
            put = rows.put(entry.id, {"student_id": entry.student, "date": entry.date,
                                      "period": entry.period, "status": entry.status,
                                      "subject": entry.subject})
            if put.kind == "changed":
                rows.amend(entry.id, batch_id=None)
            if put.kind != "unchanged" and entry.status in TOLD and (
                    entry.status != put.row.announced_status):
                to_tell[entry.student].append(entry.id)
        answers.append({"accepted": len(known), **rows.tally("updated"),
                        "unknown_students": sorted({e.student for e in batch} - set(students)),
                        "notifications": 0, "gathering": 0})
        tellings.append(to_tell)
    await rows.write()
    gather = ctx.attendance_gather
    if gather:  # every batch's entries join their child's open gathering at once
        merged: dict[str, list[str]] = defaultdict(list)
        for to_tell in tellings:
            for student_id, ids in to_tell.items():
                merged[student_id].extend(ids)
        await _join_batches(merged, now, gather)
        for answer, to_tell in zip(answers, tellings, strict=True):
            answer["gathering"] = len(to_tell)
        return answers
    for answer, to_tell in zip(answers, tellings, strict=True):  # each batch told at once
        for gathering_id in await _join_batches(to_tell, now, gather):
            answer["notifications"] += await _tell(ctx, gathering_id, now)
    return answers


async def _join_batches(to_tell: dict[str, list[str]], now: datetime, gather: timedelta
                        ) -> list[int]:
    """Each child's entries join the child's open batch, or one opened now."""
    if not to_tell:
        return []
    open_batches = {b.student_id: b for b in await read_in(to_tell, lambda part: (
        AttendanceBatch.filter(student_id__in=part, sent_at__isnull=True, due_at__gt=now)))}
    ids = []
    for student_id, entry_ids in to_tell.items():
        batch = open_batches.get(student_id)
        if batch is None:
            batch = await AttendanceBatch.create(student_id=student_id, due_at=now + gather)

        # a def, not a lambda: mypy cannot infer a lambda with a default argument
        def join(part: list[str], batch_id: int = batch.id) -> Awaitable[int]:
            return Attendance.filter(id__in=part).update(batch_id=batch_id)
        await change_in(entry_ids, join)
        ids.append(batch.id)
    return ids


async def gather_run(ctx: ServiceContext) -> dict[str, Any]:
    """Tell every gathering batch whose window has closed (the `attendance-gather` job),
    each in its own transaction, so a long list is not one long write lock."""
    from tortoise.transactions import in_transaction

    now = ctx.clock.now()
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    due: list[int] = await AttendanceBatch.filter(sent_at__isnull=True, due_at__lte=now).values_list(  # type: ignore[assignment]
        "id", flat=True)
    told = 0
    for batch_id in due:
        async with in_transaction():
            told += await _tell(ctx, batch_id, now)
    return {"batches": len(due), "notifications": told}


async def _tell(ctx: ServiceContext, batch_id: int, now: datetime) -> int:
    """One message per guardian for a batch; marks the batch and its entries told."""
    taken = await AttendanceBatch.filter(id=batch_id, sent_at__isnull=True).update(sent_at=now)
    if not taken:
        return 0  # another instance (or an earlier run) told it
    batch = await AttendanceBatch.get(id=batch_id)
    entries = await Attendance.filter(batch_id=batch_id).order_by("date", "period")
    # what was told already as it is now is not told again (a re-sent id in the same group)
    entries = [e for e in entries if e.status in TOLD and e.status != e.announced_status]
    student = await Student.get_or_none(id=batch.student_id)
    if not entries or student is None:
        return 0
    context = {"student": school.student_view(student),
               "entries": [_view(e, correction=e.announced_status is not None) for e in entries],
               "counts": _counts(entries)}
    guardians = (await school.guardians_of({student.id})).get(student.id, [])
    outcome = await fan_out(ctx, guardians, Notice(
        kind="attendance", template="attendance_new", key=f"attendance:{batch_id}",
        context=context), now)
    for status in {entry.status for entry in entries}:  # one statement per status, not per entry

        def announce(part: list[str], told: str = status) -> Awaitable[int]:
            return Attendance.filter(id__in=part).update(announced_status=told)
        await change_in([e.id for e in entries if e.status == status], announce)
    return outcome.queued + outcome.digested


def _counts(entries: list[Attendance]) -> dict[str, int]:
    counts = {status: 0 for status in TOLD}
    for entry in entries:
        counts[entry.status] += 1
    return counts


def _view(entry: Attendance, correction: bool = False) -> dict[str, Any]:
    return {"date": entry.date, "period": entry.period, "status": entry.status,
            "subject": entry.subject, "correction": correction}


async def recent_reply(student: Any, today: date) -> Reply:
    entries = await Attendance.filter(student_id=student.id, date__gte=today - timedelta(days=14),
                                      status__in=TOLD).order_by("-date", "period").limit(40)
    return Reply("attendance_recent", {"student": school.student_view(student),
                                       "entries": [_view(e) for e in entries],
                                       "counts": _counts(entries)})


async def answer(ctx: ServiceContext, student: Any) -> Reply:
    """A guardian's /obecnosci: the last two weeks' absences, lateness and excuses of one
    child (the router's `SCHOOL_ANSWERS`)."""
    return await recent_reply(student, ctx.clock.now().astimezone(ctx.zone).date())
