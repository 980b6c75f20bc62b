"""The audit trail: who did what to which object, when and from where.

Every staff and admin action is appended here, whichever way it came — the console
(the signed-in person), the API (the key's label), the bot and mail (the person), the
command line. Nothing in the gateway updates or deletes an entry, and the database
refuses to (triggers in store/migrations/0005_console.py). Admins read it in the
console (`/panel/audyt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.models import AuditEntry, Person

SOURCES = ("console", "api", "bot", "mail", "cli")


@dataclass(frozen=True)
class Actor:
    """Who acts: a label a person reading the trail understands, and where from; and what
    the use-cases' permission rules read — the person (their roles and units), or, for an
    API key (no person), the key's scopes."""

    label: str
    source: str
    person_id: int | None = None
    address: str = ""
    #: the acting person as read from the store (None: an API key or the command line)
    person: Person | None = field(default=None, compare=False, repr=False)
    #: an API key's scopes (a key acts for the office within them; a person has none)
    scopes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, person: Person, source: str, address: str = "") -> Actor:
        return cls(label=f"{person.name} (#{person.id})", source=source, person_id=person.id,
                   address=address, person=person)

    def holds(self, scope: str) -> bool:
        """An API key (no person) with `scope`: it acts for the office, as an admin does."""
        return self.person is None and scope in self.scopes


class Refused(Exception):
    """A staff action's use-case said no: `reason` "forbidden" (this actor may not) or
    "conflict" (not in this state); nothing was changed or audited. Each adapter turns it
    into its own answer (the API's 403/409, the console's refusal page)."""

    def __init__(self, reason: str, action: str) -> None:
        super().__init__(f"{action}: {reason}")
        self.reason = reason
        self.action = action


async def record(actor: Actor, action: str, obj: str, now: datetime, **detail: Any) -> None:
    """Append one entry (inside the transaction of the action it records)."""
    await AuditEntry.create(at=now, actor=actor.label[:200], person_id=actor.person_id,
                            source=actor.source, action=action[:64], object=obj[:100],
                            address=actor.address[:64], detail=detail)


async def entries(*, actor: str = "", action: str = "", obj: str = "", source: str = "",
                  limit: int = 200) -> list[AuditEntry]:
    """The newest entries first, narrowed by any of the filters (substring of the actor)."""
    query = AuditEntry.all()
    if actor:
        query = query.filter(actor__icontains=actor[:100])
    if action:
        query = query.filter(action=action[:64])
    if obj:
        query = query.filter(object=obj[:100])
    if source in SOURCES:
        query = query.filter(source=source)
    return await query.order_by("-id").limit(limit)
