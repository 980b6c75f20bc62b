"""Homework, tests and quizzes (zadanie domowe, sprawdzian, kartkówka) for a class.

`POST /hooks/register/homework` and `emilanowek import homework`. The items of a batch
reach the guardians of every student in their class, one message per class and guardian
however many children they have in it. `/zadania` shows what is due from today on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out
from handlers.message import Reply
from store.models import Homework

KINDS = ("homework", "test", "quiz")
UPCOMING = 15


@dataclass
class HomeworkIn:
    id: str
    class_name: str
    subject: str
    kind: str
    title: str
    due: date
    description: str


def parse_batch(body: dict[str, Any]) -> list[HomeworkIn]:
    parsed = {}
    for n, raw in enumerate(school.items_of(body, "homework")):
        where = f"homework[{n}]"
        item = school.record(raw, where)
        entry = HomeworkIn(
            id=school.text(item, "id", where, Homework, "id") or "",
            class_name=school.text(item, "class", where, Homework, "class_name") or "",
            subject=school.text(item, "subject", where, Homework, "subject") or "",
            kind=school.choice(item, "kind", where, KINDS),
            title=school.text(item, "title", where, Homework, "title") or "",
            due=school.day(item, "due", where),
            description=(school.text(item, "description", where, Homework, "description",
                                     required=False) or "")[:10_000])
        parsed[entry.id] = entry
    return list(parsed.values())


async def apply_batch(ctx: ServiceContext, batch: list[HomeworkIn]) -> dict[str, Any]:
    now = ctx.clock.now()
    existing = {h.id: h for h in await Homework.filter(id__in=[h.id for h in batch])}
    news: dict[str, list[HomeworkIn]] = defaultdict(list)
    created = updated = unchanged = 0
    for item in batch:
        fields = {"class_name": item.class_name, "subject": item.subject, "kind": item.kind,
                  "title": item.title, "due": item.due, "description": item.description}
        old = existing.get(item.id)
        if old is None:
            await Homework.create(id=item.id, updated_at=now, **fields)
            created += 1
        elif any(getattr(old, k) != v for k, v in fields.items()):
            await Homework.filter(id=item.id).update(updated_at=now, **fields)
            updated += 1
        else:
            unchanged += 1
            continue
        news[item.class_name].append(item)
    told, unknown = 0, []
    for class_name, items in news.items():
        guardians, students = await school.guardians_of_class(class_name)
        if not students:
            unknown.append(class_name)
            continue
        context = {"class_name": class_name, "items": [_view(h) for h in items]}
        key = "homework:" + ",".join(sorted(f"{h.id}@{h.due}@{h.title[:20]}" for h in items))
        outcome = await fan_out(ctx, guardians, Notice(
            kind="homework", template="homework_new", key=key[:190], context=context), now)
        told += outcome.queued + outcome.digested
    return {"accepted": len(batch), "created": created, "updated": updated,
            "unchanged": unchanged, "unknown_classes": sorted(unknown), "notifications": told}


def _view(item: HomeworkIn | Homework) -> dict[str, Any]:
    return {"subject": item.subject, "kind": item.kind, "title": item.title, "due": item.due,
            "description": item.description}


async def upcoming_reply(student: Any, today: date) -> Reply:
    items = await Homework.filter(class_name=student.class_name, due__gte=today).order_by(
        "due").limit(UPCOMING)
    return Reply("homework_upcoming", {"student": school.student_view(student),
                                       "items": [_view(h) for h in items]})


@school.answer_for("homework")
async def _answer(ctx: ServiceContext, student: Any) -> Reply:
    return await upcoming_reply(student, ctx.clock.now().astimezone(ctx.zone).date())
