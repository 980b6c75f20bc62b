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
from store.upsert import Upserts

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
    """One answer per batch; the rows of all of them read and inserted together, the
    guardians of every class with news found at once."""
    now = ctx.clock.now()
    rows = await Upserts.read(Homework, [h.id for batch in batches for h in batch], now)
    answers: list[dict[str, Any]] = []
    all_news: list[dict[str, list[HomeworkIn]]] = []
    for batch in batches:
        news: dict[str, list[HomeworkIn]] = defaultdict(list)
        for item in batch:
            put = rows.put(item.id, {"class_name": item.class_name, "subject": item.subject,
                                     "kind": item.kind, "title": item.title, "due": item.due,
                                     "description": item.description})
            if put.kind != "unchanged":
                news[item.class_name].append(item)
        all_news.append(news)
        answers.append({"accepted": len(batch), **rows.tally("updated")})
    await rows.write()
    classes = await school.guardians_of_classes({c for news in all_news for c in news})
    for answer, news in zip(answers, all_news, strict=True):
        answer["notifications"], unknown = 0, []
        for class_name, items in news.items():
            if class_name not in classes:
                unknown.append(class_name)
                continue
            context = {"class_name": class_name, "items": [_view(h) for h in items]}
            key = "homework:" + ",".join(sorted(f"{h.id}@{h.due}@{h.title[:20]}" for h in items))
            outcome = await fan_out(ctx, classes[class_name], Notice(
                kind="homework", template="homework_new", key=key[:190], context=context), now)
            answer["notifications"] += outcome.queued + outcome.digested
        answer["unknown_classes"] = sorted(unknown)
    return answers


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
