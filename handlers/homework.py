"""Homework, tests and quizzes (zadanie domowe, sprawdzian, kartkówka) for a class.

`POST /hooks/register/homework` and `emilanowek import homework`. The items of a batch
reach the guardians of every student in their class, one message per class and guardian
however many children they have in it. `/zadania` shows what is due from today on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from handlers import class_feeds, school
from handlers.context import ServiceContext
from handlers.fanout import Notice
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


async def apply_batches(ctx: ServiceContext, batches: list[list[HomeworkIn]]
                        ) -> list[dict[str, Any]]:
    """One answer per batch (handlers/class_feeds.py): new or changed homework is a
    notice to the class's guardians."""
    return await class_feeds.apply_batches(ctx, Homework, batches, _columns, _notice)


def _columns(item: HomeworkIn) -> dict[str, Any]:
    return {"class_name": item.class_name, "subject": item.subject, "kind": item.kind,
            "title": item.title, "due": item.due, "description": item.description}


def _notice(class_name: str, items: list[HomeworkIn]) -> Notice:
    key = "homework:" + ",".join(sorted(f"{h.id}@{h.due}@{h.title[:20]}" for h in items))
    return Notice(kind="homework", template="homework_new", key=key[:190],
                  context={"class_name": class_name, "items": [_view(h) for h in items]})


def _view(item: HomeworkIn | Homework) -> dict[str, Any]:
    return {"subject": item.subject, "kind": item.kind, "title": item.title, "due": item.due,
            "description": item.description}


async def upcoming_reply(student: Any, today: date) -> Reply:
    items = await Homework.filter(class_name=student.class_name, due__gte=today).order_by(
        "due").limit(UPCOMING)
    return Reply("homework_upcoming", {"student": school.student_view(student),
                                       "items": [_view(h) for h in items]})


async def answer(ctx: ServiceContext, student: Any) -> Reply:
    """A guardian's /zadania: what one child's class has due from today (the router's `SCHOOL_ANSWERS`)."""
    return await upcoming_reply(student, ctx.clock.now().astimezone(ctx.zone).date())
