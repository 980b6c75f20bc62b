"""Messages from the school to the guardians of a class or of one student.

`POST /hooks/register/messages` and `emilanowek import messages`. A message names a
`class` or a `student` (not both); each guardian gets it once. A re-sent id changes
nothing (messages are not edited after they were told).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers import school
from handlers.context import ServiceContext
from handlers.fanout import Notice, fan_out
from handlers.limits import fit_text
from handlers.message import InvalidInput
from store.models import SchoolMessage, Student


@dataclass
class MessageIn:
    id: str
    class_name: str | None
    student: str | None
    title: str
    body: str
    sender: str


def parse_batch(body: dict[str, Any]) -> list[MessageIn]:
    parsed = {}
    for n, raw in enumerate(school.items_of(body, "messages")):
        where = f"messages[{n}]"
        item = school.record(raw, where)
        message = MessageIn(
            id=school.text(item, "id", where, SchoolMessage, "id") or "",
            class_name=school.text(item, "class", where, SchoolMessage, "class_name",
                                   required=False),
            student=school.text(item, "student", where, SchoolMessage, "student_id",
                                required=False),
            title=school.text(item, "title", where, SchoolMessage, "title") or "",
            body=fit_text(school.text(item, "body", where, SchoolMessage, "body") or "",
                          f"{where}.body", 20_000),
            sender=school.text(item, "sender", where, SchoolMessage, "sender") or "")
        if bool(message.class_name) == bool(message.student):
            raise InvalidInput(f"{where}.class", f"'{where}' names a 'class' or a 'student'")
        parsed[message.id] = message
    return list(parsed.values())


async def apply_batch(ctx: ServiceContext, batch: list[MessageIn]) -> dict[str, Any]:
    now = ctx.clock.now()
    seen = set(await SchoolMessage.filter(id__in=[m.id for m in batch]).values_list(
        "id", flat=True))
    told, unknown, created = 0, [], 0
    for message in batch:
        if message.id in seen:
            continue
        if message.student:
            student = await Student.get_or_none(id=message.student)
            if student is None:
                unknown.append(message.student)
                continue
            guardians = (await school.guardians_of({student.id})).get(student.id, [])
            about = school.student_view(student)
        else:
            guardians, students = await school.guardians_of_class(message.class_name or "")
            if not students:
                unknown.append(message.class_name)
                continue
            about = {"class_name": message.class_name}
        await SchoolMessage.create(id=message.id, class_name=message.class_name,
                                   student_id=message.student, title=message.title,
                                   body=message.body, sender=message.sender, created_at=now)
        created += 1
        context = {"about": about, "title": message.title, "body": message.body,
                   "sender": message.sender}
        outcome = await fan_out(ctx, guardians, Notice(
            kind="messages", template="school_message", key=f"school-message:{message.id}",
            context=context), now)
        told += outcome.queued + outcome.digested
    return {"accepted": len(batch), "created": created, "unknown": sorted(set(unknown)),
            "notifications": told}
