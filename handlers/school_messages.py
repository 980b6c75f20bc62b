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
from store.models import SchoolMessage
from store.rows import insert_rows, read_in


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


async def apply_batches(ctx: ServiceContext, batches: list[list[MessageIn]]
                        ) -> list[dict[str, Any]]:
    """One answer per batch; the students, classes and guardians of them all are found
    at once (a message is told once: a re-sent id, here or earlier, changes nothing)."""
    now = ctx.clock.now()
    everything = [m for batch in batches for m in batch]
    seen = set(await read_in({m.id for m in everything}, lambda part: SchoolMessage.filter(
        id__in=part).values_list("id", flat=True)))
    students = await school.students_by_id({m.student for m in everything if m.student})
    guardians = await school.guardians_of(set(students))
    classes = await school.guardians_of_classes({m.class_name for m in everything
                                                 if m.class_name and not m.student})
    answers, fresh = [], []
    for batch in batches:
        answer: dict[str, Any] = {"accepted": len(batch), "created": 0, "notifications": 0}
        unknown: set[str] = set()
        for message in batch:
            if message.id in seen:
                continue
            if message.student:
                if message.student not in students:
                    unknown.add(message.student)
                    continue
                people = guardians.get(message.student, [])
                about = school.student_view(students[message.student])
            else:
                if message.class_name not in classes:
                    unknown.add(message.class_name or "")
                    continue
                people, about = classes[message.class_name], {"class_name": message.class_name}
            seen.add(message.id)
            fresh.append(SchoolMessage(id=message.id, class_name=message.class_name,
                                       student_id=message.student, title=message.title,
                                       body=message.body, sender=message.sender,
                                       created_at=now))
            answer["created"] += 1
            context = {"about": about, "title": message.title, "body": message.body,
                       "sender": message.sender}
            outcome = await fan_out(ctx, people, Notice(
                kind="messages", template="school_message", key=f"school-message:{message.id}",
                context=context), now)
            answer["notifications"] += outcome.queued + outcome.digested
        answer["unknown"] = sorted(unknown)
        answers.append(answer)
    await insert_rows(fresh)
    return answers
