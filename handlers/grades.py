"""Grade notifications: the school register pushes, each guardian is told.

A batch (hook or CSV) is validated whole, then applied in one transaction: new grades are
inserted, re-sent ids with other content become corrections (revision + 1), identical
re-sends change nothing. Each guardian of a student with news gets one message per batch
and student — instantly (after their quiet hours) or in their daily digest. Only the
student's own guardians are ever told anything.
"""

from __future__ import annotations

import copy
import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out, mode_for
from handlers.limits import check_all, fit
from handlers.message import InboundMessage, InvalidInput, Reply
from store.models import Grade, GradeNotice, Person, Student
from store.upsert import Upserts

RECENT = 10


@dataclass(frozen=True)
class GradeIn:
    id: str
    student: str
    subject: str
    value: str
    weight: str | None
    category: str | None
    recorded_at: datetime


def _text(item: dict[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' must be text or a number")
    text = str(value).strip()
    if not text and required:
        raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' must not be empty")
    return text


def parse_item(item: Any, where: str) -> GradeIn:
    if not isinstance(item, dict):
        raise InvalidInput(where, f"'{where}' must be an object")
    grade = GradeIn(
        id=_text(item, "id", where) or "",
        student=_text(item, "student", where) or "",
        subject=_text(item, "subject", where) or "",
        value=_text(item, "value", where) or "",
        weight=_text(item, "weight", where, required=False),
        category=_text(item, "category", where, required=False),
        recorded_at=school.parse_time(item.get("recorded_at"), f"{where}.recorded_at"),
    )
    fit(Student, "id", grade.student, f"{where}.student")
    check_all(Grade, {"id": grade.id, "subject": grade.subject, "value": grade.value,
                      "weight": grade.weight, "category": grade.category}, f"{where}.")
    return grade


def parse_batch(body: dict[str, Any]) -> list[GradeIn]:
    """Validate a whole hook body before anything is written."""
    items = body.get("grades")
    if not isinstance(items, list):
        raise InvalidInput("grades", "'grades' must be a list")
    parsed = [parse_item(item, f"grades[{n}]") for n, item in enumerate(items)]
    seen: dict[str, GradeIn] = {}
    for grade in parsed:
        seen[grade.id] = grade  # within one batch the last word on an id wins
    return list(seen.values())


async def apply_batches(ctx: ServiceContext, batches: list[list[GradeIn]]
                        ) -> list[dict[str, Any]]:
    """Store grades and queue notices, one answer per batch, as if the batches had come
    one after another; the rows of them all are read and inserted together
    (store/upsert.py). Call inside a transaction (the hook's)."""

    now = ctx.clock.now()
    everything = [g for batch in batches for g in batch]
    students = await school.students_by_id({g.student for g in everything})
    rows = await Upserts.read(Grade, [g.id for g in everything if g.student in students], now)
    answers, all_news = [], []
    for batch in batches:
        known = [g for g in batch if g.student in students]
        news: dict[str, list[tuple[Grade, bool]]] = defaultdict(list)
        for item in known:
            put = rows.put(item.id, {"student_id": item.student, "subject": item.subject,
                                     "value": item.value, "weight": item.weight,
                                     "category": item.category},
                           also={"recorded_at": item.recorded_at})
            if put.kind == "changed":
                rows.amend(item.id, revision=put.row.revision + 1)
            if put.kind != "unchanged":  # as it is now: a later batch may change it again
                news[item.student].append((copy.copy(put.row), put.kind == "changed"))
        all_news.append(news)
        answers.append({"accepted": len(known), **rows.tally("corrected"),
                        "unknown_students": sorted({g.student for g in batch} - set(students))})
    await rows.write()
    guardians = await school.guardians_of({sid for news in all_news for sid in news})
    for answer, news in zip(answers, all_news, strict=True):
        answer["notifications"] = await notify_guardians(ctx, students, news, now, guardians)
    return answers


async def notify_guardians(ctx: ServiceContext, students: dict[str, Student],
                           news: dict[str, list[tuple[Grade, bool]]], now: datetime,
                           guardians: dict[str, list[Person]]) -> int:
    """One notice per guardian and student through the one fan-out (handlers/fanout.py):
    a message now (or after quiet hours), nothing if they turned grades off, or — for
    the grade digest — a `GradeNotice` per grade for the `grade-digest` job. Returns how
    many guardians were told or queued for a digest."""
    told = 0
    notices: list[GradeNotice] = []
    for student_id, items in news.items():
        people = guardians.get(student_id, [])
        digest = [p for p in people if mode_for(p, "grades") == "digest"]
        notices.extend(GradeNotice(person_id=p.id, student_id=student_id, grade_id=g.id,
                                   correction=corr, created_at=now)
                       for p in digest for g, corr in items)
        fingerprint = hashlib.sha256(
            ",".join(sorted(f"{g.id}@{g.revision}" for g, _ in items)).encode()).hexdigest()[:16]
        outcome = await fan_out(ctx, [p for p in people if p not in digest], Notice(
            kind="grades", template="grades_new", key=f"grades:{student_id}:{fingerprint}",
            cause=f"grades:{student_id}",
            context=_message_context(students[student_id], items)), now)
        # a guardian with no channel at all cannot be told; the roster shows it
        told += outcome.queued + len({p.id for p in digest})
    if notices:
        await GradeNotice.bulk_create(notices, batch_size=1000)
    return told


def _message_context(student: Student, items: list[tuple[Grade, bool]]) -> dict[str, Any]:
    new = [g for g, corr in items if not corr]
    corrections = [g for g, corr in items if corr]
    return {"student": {"name": student.name, "class_name": student.class_name},
            "new": [_grade_view(g) for g in new],
            "corrections": [_grade_view(g) for g in corrections]}


def _grade_view(grade: Grade) -> dict[str, Any]:
    return {"subject": grade.subject, "value": grade.value, "weight": grade.weight,
            "category": grade.category, "recorded_at": grade.recorded_at}


# --- daily digest -------------------------------------------------------------------------


async def digest_run(ctx: ServiceContext) -> dict[str, Any]:
    """Send each daily-digest guardian whose hour it is everything since their last digest."""
    now = ctx.clock.now()
    hour = now.astimezone(ctx.zone).hour
    day = now.astimezone(ctx.zone).date().isoformat()
    pending = await GradeNotice.filter(sent_at__isnull=True).values_list("person_id", flat=True)
    people = await Person.filter(id__in=set(pending), digest_mode="daily", digest_hour=hour)
    sent = 0
    for person in people:
        async with in_transaction():
            notices = await GradeNotice.filter(person_id=person.id, sent_at__isnull=True)
            if not notices:
                continue
            grades = {g.id: g for g in await Grade.filter(id__in=[n.grade_id for n in notices])}
            students = {s.id: s for s in await Student.filter(
                id__in={n.student_id for n in notices})}
            per_student: dict[str, list[tuple[Grade, bool]]] = defaultdict(list)
            for n in notices:
                if n.grade_id in grades:
                    per_student[n.student_id].append((grades[n.grade_id], n.correction))
            context = {"children": [
                {**_message_context(students[sid], items)} for sid, items in per_student.items()
            ], "day": now}
            outcome = await fan_out(ctx, [person], Notice(
                kind="digest", template="grades_digest", key=f"grade-digest:{day}",
                context=context), now)
            if not outcome.queued:
                continue  # nowhere to send: keep the notices for when a channel exists
            await GradeNotice.filter(id__in=[n.id for n in notices]).update(sent_at=now)
            sent += 1
    return {"digests": sent}


# --- asking: /oceny -------------------------------------------------------------------------


async def recent_reply(student: Student) -> Reply:
    grades = await Grade.filter(student_id=student.id).order_by("-recorded_at").limit(RECENT)
    return Reply("grades_recent", {"student": student,
                                   "grades": [_grade_view(g) for g in grades]})


async def handle_grades(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                        ) -> list[Reply]:
    assert person is not None
    children = await school.pupils_of(person)
    if not children:
        return [Reply("grades_no_children", {})]
    if len(children) == 1:
        return [await recent_reply(children[0])]
    buttons = [[(f"{c.name} ({c.class_name})" if c.class_name else c.name, f"grades:{c.id}")]
               for c in children]
    return [Reply("grades_pick_child", {"count": len(children)}, buttons=buttons)]


async def handle_grades_callback(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                                 ) -> list[Reply]:
    student_id = (msg.callback or "").partition(":")[2]
    if person is None:
        return [Reply("not_linked", {})]
    child = await school.pupil_of(person, student_id)
    if child is None:
        return [Reply("grades_not_yours", {})]
    return [await recent_reply(child)]


# --- roster -------------------------------------------------------------------------------


async def upsert_student(student_id: str, name: str, class_name: str,
                         guardian_ids: list[int]) -> tuple[Student, bool]:
    """Create or update a student and set exactly these guardians. Returns (student,
    whether anything changed)."""
    student = await Student.get_or_none(id=student_id)
    changed = False
    if student is None:
        student = await Student.create(id=student_id, name=name, class_name=class_name)
        changed = True
    elif (student.name, student.class_name) != (name, class_name):
        student.name, student.class_name = name, class_name
        await student.save()
        changed = True
    current = set(await Student.filter(id=student_id).values_list("guardians__id", flat=True))
    current.discard(None)
    wanted = set(guardian_ids)
    if current != wanted:
        people = await Person.filter(id__in=wanted)
        await student.guardians.clear()
        if people:
            await student.guardians.add(*people)
        changed = True
    return student, changed
