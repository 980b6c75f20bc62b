"""People as the town describes them: one validator for a person (the API and the CSV
import) and one upsert. `gateway/` only reads HTTP or CSV into plain values and calls
these. How each wants to be told is handlers/preferences.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise.transactions import in_transaction

from handlers import accounts, preferences
from handlers import unsubscribe as unsubscribe_token
from handlers.addresses import normalise_email
from handlers.channels import Channels
from handlers.context import ServiceContext
from handlers.i18n import LANGUAGES
from handlers.limits import check_all, fit
from handlers.message import InvalidInput
from store.models import ROLES, Identity, Person, Student


@dataclass(frozen=True)
class PersonIn:
    name: str
    roles: tuple[str, ...]
    units: tuple[str, ...] = ()
    email: str | None = None
    telegram_chat: str | None = None
    #: in E.164, normalised by the SMS channel
    phone: str | None = None
    library_card: str | None = None
    language: str = "pl"
    #: the register's id of the Student a pupil's own account is (role `student`, #20)
    student_id: str | None = None

    def fields(self) -> dict[str, Any]:
        """The Person columns this description sets; a pupil's Student only when given (a
        re-import without it keeps the one the school set)."""
        own = {"student_id": self.student_id} if self.student_id else {}
        return {"name": self.name, "roles": list(self.roles), "units": list(self.units),
                "library_card": self.library_card, "language": self.language, **own}


def parse_person(*, name: str, roles: list[Any], units: list[Any] | None = None,
                 email: str | None = None, telegram_chat: str | int | None = None,
                 library_card: str | None = None, language: str | None = None,
                 phone: str | None = None, channels: Channels | None = None,
                 student: str | int | None = None) -> PersonIn:
    """A person's description checked, whoever sent it: InvalidInput names the field.
    A phone is read by the registered SMS channel's `normalise` (`channels`), and refused
    while there is none: kept unread, it would be a number nobody checked."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name", "'name' is required")
    if not roles or not all(isinstance(r, str) and r in ROLES for r in roles):
        raise InvalidInput("roles", f"'roles' must list some of {', '.join(ROLES)}")
    units = units or []
    if len(units) > 50 or not all(isinstance(u, str) and 0 < len(u) <= 64 for u in units):
        raise InvalidInput("units", "'units' lists up to 50 names of up to 64 characters")
    language = language or "pl"
    if language not in LANGUAGES:
        raise InvalidInput("language", f"'language' is one of {', '.join(LANGUAGES)}")
    address = None
    if email:
        address = normalise_email(email)
        if address is None:
            raise InvalidInput("email", "'email' is not a valid address")
    chat = str(telegram_chat) if telegram_chat not in (None, "") else None
    number = None
    if phone:
        sms = channels.get("sms") if channels is not None else None
        if sms is None:
            raise InvalidInput("phone", "'phone' needs the SMS channel, which is off (EMIL_SMS_TOKEN)")
        number = sms.normalise(phone)
        if number is None:
            raise InvalidInput("phone", "'phone' is not a mobile number an SMS can reach")
    card = library_card or None
    student_id = _student(student, roles)
    check_all(Person, {"name": name, "library_card": card})
    if chat is not None:
        check_all(Identity, {"address": chat})
    return PersonIn(name=name, roles=tuple(sorted(set(roles))), units=tuple(sorted(set(units))),
                    email=address, telegram_chat=chat, phone=number, library_card=card,
                    language=language, student_id=student_id)


def _student(student: str | int | None, roles: list[Any]) -> str | None:
    """A pupil's own Student: only a person with role `student` is one (a guardian's
    children come from the register's guardians, never from here)."""
    if student is None or student == "":
        return None
    if "student" not in roles:
        raise InvalidInput("student", "'student' is only for a person with role student")
    return fit(Student, "id", str(student).strip(), "student")


async def create(ctx: ServiceContext, wanted: PersonIn) -> Person:
    """A new person with their addresses; a library card is one person's only."""
    if wanted.library_card and await Person.filter(library_card=wanted.library_card).exists():
        raise CardTaken(wanted.library_card)
    await _known_student(wanted)
    person = await accounts.new_person(ctx, **wanted.fields())
    await _link_addresses(person, wanted)
    return person


async def upsert(ctx: ServiceContext, wanted: PersonIn) -> tuple[Person, bool]:
    """Find the person by email, then by library card, and make them match `wanted`
    (re-importing the same list changes nothing). Returns (person, changed)."""
    person = await accounts.person_by_address("email", wanted.email) if wanted.email else None
    if person is None and wanted.library_card:
        person = await Person.get_or_none(library_card=wanted.library_card)
    if person is None:
        return await create(ctx, wanted), True
    await _known_student(wanted)
    fields = wanted.fields()
    changed = any(getattr(person, k) != v for k, v in fields.items())
    if changed:
        await Person.filter(id=person.id).update(**fields)
    return person, await _link_addresses(person, wanted) or changed


async def _known_student(wanted: PersonIn) -> None:
    """A pupil's account names a Student the register has sent (POST /api/v1/students or a
    register hook): an unknown id is a typo that would show the pupil nothing."""
    if wanted.student_id and not await Student.exists(id=wanted.student_id):
        raise InvalidInput("student", f"no student with id {wanted.student_id!r}")


async def _link_addresses(person: Person, wanted: PersonIn) -> bool:
    linked = False
    for channel, address in (("email", wanted.email), ("telegram", wanted.telegram_chat),
                             ("sms", wanted.phone)):
        if address and not await Identity.filter(channel=channel, address=address,
                                                 person_id=person.id).exists():
            await accounts.link(channel, address, person)
            linked = True
    return linked


class CardTaken(Exception):
    """The library card is already someone else's (409 in the API)."""


async def unsubscribe(ctx: ServiceContext, token: str) -> Person | None:
    """RFC 8058 one-click: turn off the notice type a mail's `List-Unsubscribe` token names,
    for its person on its channel, through the same rule as `/ustawienia`. None when the
    token is forged or damaged or its person is gone (erased)."""
    opt_out = unsubscribe_token.read(ctx, token)
    if opt_out is None:
        return None
    async with in_transaction():
        person = await Person.filter(id=opt_out.person_id).select_for_update().first()
        if person is None:
            return None
        try:
            changes = preferences.parse_preferences(
                {"notices": {f"{opt_out.kind}@{opt_out.channel}": "off"}}, person,
                ctx.channels.names)
        except InvalidInput:
            return None  # signed by us for a type or channel that no longer exists
        await preferences.set_preferences(person, changes)
    return person
