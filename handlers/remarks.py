"""Remarks (uwagi): a teacher's positive, negative or neutral note about a student.

`POST /hooks/register/remarks` and `emilanowek import remarks`; each guardian gets one
message per child for the remarks of a batch (a re-sent id with new text is announced
again as a correction; an identical re-send changes nothing). `/uwagi` shows the recent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out
from handlers.message import Reply
from store.models import Remark
from store.upsert import Upserts

KINDS = ("positive", "negative", "neutral")
RECENT = 10


@dataclass
class RemarkIn:
    id: str
    student: str
    kind: str
    text: str
    teacher: str
    recorded_at: datetime


def parse_batch(body: dict[str, Any]) -> list[RemarkIn]:
    parsed = {}
    for n, raw in enumerate(school.items_of(body, "remarks")):
        where = f"remarks[{n}]"
        item = school.record(raw, where)
        remark = RemarkIn(
            id=school.text(item, "id", where, Remark, "id") or "",
            student=school.text(item, "student", where, Remark, "student_id") or "",
            kind=school.choice(item, "kind", where, KINDS),
            text=school.text(item, "text", where, Remark, "text") or "",
            teacher=school.text(item, "teacher", where, Remark, "teacher") or "",
            recorded_at=school.moment(item, "recorded_at", where))
        parsed[remark.id] = remark
    return list(parsed.values())


async def apply_batches(ctx: ServiceContext, batches: list[list[RemarkIn]]
                        ) -> list[dict[str, Any]]:
    """One answer per batch; the rows of all of them read and inserted together."""
    now = ctx.clock.now()
    everything = [r for batch in batches for r in batch]
    students = await school.students_by_id({r.student for r in everything})
    rows = await Upserts.read(Remark, [r.id for r in everything if r.student in students], now)
    answers: list[dict[str, Any]] = []
    all_news: list[dict[str, list[tuple[RemarkIn, bool]]]] = []
    for batch in batches:
        known = [r for r in batch if r.student in students]
        news: dict[str, list[tuple[RemarkIn, bool]]] = defaultdict(list)
        for item in known:
            put = rows.put(item.id, {"student_id": item.student, "kind": item.kind,
                                     "text": item.text, "teacher": item.teacher,
                                     "recorded_at": item.recorded_at})
            if put.kind != "unchanged":
                news[item.student].append((item, put.kind == "changed"))
        all_news.append(news)
        answers.append({"accepted": len(known), **rows.tally("corrected"),
                        "unknown_students": sorted({r.student for r in batch} - set(students))})
    await rows.write()
    guardians = await school.guardians_of({sid for news in all_news for sid in news})
    for answer, news in zip(answers, all_news, strict=True):
        answer["notifications"] = 0
        for student_id, items in news.items():
            context = {"student": school.student_view(students[student_id]),
                       "remarks": [_view(r, corrected) for r, corrected in items]}
            key = "remarks:" + ",".join(sorted(f"{r.id}@{r.text[:20]}" for r, _ in items))
            outcome = await fan_out(ctx, guardians.get(student_id, []), Notice(
                kind="remarks", template="remarks_new", key=f"{key[:150]}:{len(items)}",
                context=context), now)
            answer["notifications"] += outcome.queued + outcome.digested
    return answers


def _view(remark: RemarkIn | Remark, correction: bool = False) -> dict[str, Any]:
    return {"kind": remark.kind, "text": remark.text, "teacher": remark.teacher,
            "recorded_at": remark.recorded_at, "correction": correction}


async def recent_reply(student: Any) -> Reply:
    remarks = await Remark.filter(student_id=student.id).order_by("-recorded_at").limit(RECENT)
    return Reply("remarks_recent", {"student": school.student_view(student),
                                    "remarks": [_view(r) for r in remarks]})


async def answer(ctx: ServiceContext, student: Any) -> Reply:
    """A guardian's /uwagi: one child's latest remarks (the router's `SCHOOL_ANSWERS`)."""
    return await recent_reply(student)
