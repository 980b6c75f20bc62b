"""What the school modules share: reading register records and finding guardians.

Each register module (attendance, remarks, homework, messages) is a handler module of
its own with `parse_batch` (the whole batch checked before anything is written, a field
named on error) and `apply_batches` (the batches of concurrent requests, inside the hooks'
one transaction, one answer each); these are their parts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from tortoise import connections
from tortoise.models import Model

from handlers.limits import fit
from handlers.message import InvalidInput, Reply
from store.models import Person, Student
from store.rows import read_in
from store.sql import sql


def items_of(body: dict[str, Any], name: str) -> list[Any]:
    items = body.get(name)
    if not isinstance(items, list):
        raise InvalidInput(name, f"'{name}' must be a list")
    return items


def record(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidInput(where, f"'{where}' must be an object")
    return item


def text(item: dict[str, Any], name: str, where: str, model: type[Model], column: str, *,
         required: bool = True) -> str | None:
    """A text field, checked against the column it goes to."""
    value = item.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' must be text")
    return fit(model, column, str(value).strip(), f"{where}.{name}")


def choice(item: dict[str, Any], name: str, where: str, allowed: tuple[str, ...]) -> str:
    value = item.get(name)
    if value not in allowed:
        raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' must be one of "
                                              f"{', '.join(allowed)}")
    return str(value)


def day(item: dict[str, Any], name: str, where: str) -> date:
    value = item.get(name)
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' must be a date (YYYY-MM-DD)"
                           ) from None


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 date-time with its offset (a register's times, an announcement's
    `publish_at`); a time without a zone is refused, not guessed."""
    if not isinstance(value, str):
        raise InvalidInput(where, f"'{where}' must be an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(where, f"'{where}' must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise InvalidInput(where, f"'{where}' needs a time zone offset")
    return parsed


def moment(item: dict[str, Any], name: str, where: str) -> datetime:
    return parse_time(item.get(name), f"{where}.{name}")


async def students_by_id(ids: set[str]) -> dict[str, Student]:
    return {s.id: s for s in await read_in(ids, lambda part: Student.filter(id__in=part))}


async def guardians_of(student_ids: set[str]) -> dict[str, list[Person]]:
    """Each student's guardians: the link table read directly (the ORM's join through
    the students cost half of a grades hook's time), then the people found, if any."""
    if not student_ids:
        return {}
    db = connections.get("default")

    async def linked(part: list[str]) -> list[Any]:
        marks = ",".join("?" * len(part))
        _, rows = await db.execute_query(sql(
            db, f"SELECT student_id, person_id FROM student_guardian WHERE student_id IN ({marks})"),
            part)
        return rows

    links = [(r["student_id"], r["person_id"]) for r in await read_in(student_ids, linked)]
    if not links:
        return {}
    people = {p.id: p for p in await read_in({pid for _, pid in links},
                                              lambda part: Person.filter(id__in=part))}
    found: dict[str, list[Person]] = defaultdict(list)
    for student_id, pid in links:
        if pid is not None and pid in people:
            found[student_id].append(people[pid])
    return found


async def guardians_of_classes(class_names: set[str]) -> dict[str, list[Person]]:
    """The guardians of everyone in each class, each guardian once per class; a class
    with no students is missing from the answer (an unknown class)."""
    if not class_names:
        return {}
    students = await read_in(class_names, lambda part: Student.filter(
        class_name__in=part).values_list("id", "class_name"))
    per_student = await guardians_of({sid for sid, _ in students})
    found: dict[str, dict[int, Person]] = {name: {} for _, name in students}
    for student_id, class_name in students:
        found[class_name].update((p.id, p) for p in per_student.get(student_id, []))
    return {name: list(people.values()) for name, people in found.items()}


def student_view(student: Student) -> dict[str, str]:
    return {"name": student.name, "class_name": student.class_name}


# --- whose pupils: the one place -------------------------------------------------------------


async def pupils_of(person: Person) -> list[Student]:
    """Whose register records this person may see, by name: a guardian their children, a
    pupil (role `student`, issue #20) their own Student, someone both, both. The one place
    that decides it: every school command and button asks here, so a pupil's account can
    never reach a classmate and a guardian's view stays as it was. A `student_id` without
    the role shows nothing (the school took the role away); the role without one, nothing."""
    found = {s.id: s for s in await Student.filter(guardians=person.id)}
    if "student" in (person.roles or []) and person.student_id:
        own = await Student.get_or_none(id=person.student_id)
        if own is not None:
            found[own.id] = own
    return sorted(found.values(), key=lambda s: (s.name, s.id))


async def pupil_of(person: Person, student_id: str) -> Student | None:
    """The pupil a button names, if `pupils_of` would show them; None the same for "not
    yours" and "no such student", so a crafted id learns nothing."""
    return next((s for s in await pupils_of(person) if s.id == student_id), None)


# --- the bot: /obecnosci, /uwagi, /zadania ----------------------------------------------------

#: one child's answer to a guardian's command (`async (ctx, student) -> Reply`); the
#: router names each kind's answer in its table
Answer = Callable[[Any, Student], Awaitable[Reply]]


async def handle_command(kind: str, answer: Answer, ctx: Any, person: Person | None
                         ) -> list[Any]:
    """A guardian's or pupil's command: the only pupil's answer, or a button per pupil
    (each button's data `kind:student`, answered by `handle_callback` with the same answer)."""
    assert person is not None
    children = await pupils_of(person)
    if not children:
        return [Reply("grades_no_children", {})]
    if len(children) == 1:
        return [await answer(ctx, children[0])]
    buttons = [[(f"{c.name} ({c.class_name})" if c.class_name else c.name, f"{kind}:{c.id}")]
               for c in children]
    return [Reply("school_pick_child", {"count": len(children), "kind": kind}, buttons=buttons)]


async def handle_callback(answer: Answer, ctx: Any, data: str, person: Person | None
                          ) -> list[Any]:
    if person is None:
        return [Reply("not_linked", {})]
    child = await pupil_of(person, data[:64])
    if child is None:
        return [Reply("grades_not_yours", {})]
    return [await answer(ctx, child)]
