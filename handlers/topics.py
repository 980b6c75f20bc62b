"""Lesson topics (tematy lekcji) as the register records them, issue #20.

`POST /hooks/register/topics` and `emilanowek import topics` store each lesson's topic by
the register's id. `/tematy` shows one child's class's topics for the last school days,
by subject — what a guardian asks for when a child was away or says "nothing" about
school. As a notice type `topics` is off by default (a lesson a day per subject is too
much to be told of unasked); a guardian may turn it on, best as the daily digest.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from handlers import class_feeds, school
from handlers.context import ServiceContext
from handlers.fanout import Notice
from handlers.message import InvalidInput, Reply
from store.models import LessonTopic

#: how many school days `/tematy` looks back: days with at least one topic recorded, so
#: that a weekend or a holiday does not empty the answer
SCHOOL_DAYS = 7


@dataclass
class TopicIn:
    id: str
    class_name: str
    subject: str
    date: date
    period: int
    topic: str
    teacher: str


def _period(item: dict[str, Any], where: str) -> int:
    """The lesson's number in the day, as attendance reads it (0 is a lesson before the
    first, which some schools have)."""
    value = item.get("period")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise InvalidInput(f"{where}.period", f"'{where}.period' must be a lesson number 0–20")
    return value


def parse_batch(body: dict[str, Any]) -> list[TopicIn]:
    """The whole batch checked before anything is written; every text against the length
    of its column (handlers/limits.fit), the field named on error."""
    parsed = {}
    for n, raw in enumerate(school.items_of(body, "topics")):
        where = f"topics[{n}]"
        item = school.record(raw, where)
        entry = TopicIn(
            id=school.text(item, "id", where, LessonTopic, "id") or "",
            class_name=school.text(item, "class", where, LessonTopic, "class_name") or "",
            subject=school.text(item, "subject", where, LessonTopic, "subject") or "",
            date=school.day(item, "date", where),
            period=_period(item, where),
            topic=school.text(item, "topic", where, LessonTopic, "topic") or "",
            teacher=school.text(item, "teacher", where, LessonTopic, "teacher",
                                required=False) or "")
        parsed[entry.id] = entry
    return list(parsed.values())


async def apply_batches(ctx: ServiceContext, batches: list[list[TopicIn]]
                        ) -> list[dict[str, Any]]:
    """One answer per batch (handlers/class_feeds.py): new or changed topics are a notice
    to the class's guardians, which most have off."""
    return await class_feeds.apply_batches(ctx, LessonTopic, batches, _columns, _notice)


def _columns(item: TopicIn) -> dict[str, Any]:
    return {"class_name": item.class_name, "subject": item.subject, "date": item.date,
            "period": item.period, "topic": item.topic, "teacher": item.teacher}


def _notice(class_name: str, items: list[TopicIn]) -> Notice:
    return Notice(kind="topics", template="topics_new", key=_key(items),
                  context={"class_name": class_name, "subjects": _by_subject(items)})


def _key(items: list[TopicIn]) -> str:
    """The same news is one notice however often it is re-sent; a changed topic is new
    (a digest of hashes, as a class's week of topics would not fit the key's column)."""
    content = "|".join(sorted(f"{t.id}@{t.date}@{t.topic}" for t in items))
    return "topics:" + hashlib.sha256(content.encode()).hexdigest()[:40]


def _by_subject(items: list[Any]) -> list[dict[str, Any]]:
    """Topics grouped by subject (alphabetically), each subject's in lesson order."""
    grouped: dict[str, list[Any]] = defaultdict(list)
    for item in sorted(items, key=lambda t: (t.date, t.period)):
        grouped[item.subject].append({"date": item.date, "period": item.period,
                                      "topic": item.topic, "teacher": item.teacher})
    return [{"subject": subject, "lessons": grouped[subject]} for subject in sorted(grouped)]


async def recent_reply(student: Any, today: date) -> Reply:
    """The topics of the child's class on its last `SCHOOL_DAYS` days with lessons."""
    days = await LessonTopic.filter(class_name=student.class_name, date__lte=today).order_by(
        "-date").distinct().limit(SCHOOL_DAYS).values_list("date", flat=True)
    items = await LessonTopic.filter(class_name=student.class_name, date__lte=today,
                                     date__gte=min(days)) if days else []
    return Reply("topics_recent", {"student": school.student_view(student),
                                   "subjects": _by_subject(list(items)),
                                   "days": len(days)})


async def answer(ctx: ServiceContext, student: Any) -> Reply:
    """A guardian's /tematy for one child (the router's `SCHOOL_ANSWERS`)."""
    return await recent_reply(student, ctx.clock.now().astimezone(ctx.zone).date())
