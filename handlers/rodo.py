"""RODO (GDPR) requests: everything held about a person as one JSON document (art. 15),
and erasure (art. 17).

Erasure removes the person, their addresses, preferences, links, sessions, conversations,
notices waiting for them, their library records, the raw mail and Telegram updates they
sent, and the contents of the messages we sent them. Cases are records the town must
keep (the office's register of matters): they stay with their number, category, status
and dates and the office's own notes, while what the resident wrote — the body, their
messages and attachments — and every link to them is removed. The audit trail keeps its
entries (it is the record of who did what, including this erasure).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from handlers import audit
from store import search
from store.models import (
    AnnouncementDelivery,
    Attachment,
    AuditEntry,
    Case,
    CaseEvent,
    Conversation,
    DigestItem,
    GradeNotice,
    Identity,
    LinkCode,
    Loan,
    LoanReminder,
    Outbox,
    Person,
    RawInbound,
    Renewal,
    SentMail,
    SignInLink,
    SignInRequest,
    StaffSession,
    Student,
)

ERASED = "[usunięto na wniosek RODO / erased on request]"


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _addresses(person: Person) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"email": set(), "telegram": set()}
    for channel, address in await Identity.filter(person_id=person.id).values_list(
            "channel", "address"):
        found.setdefault(channel, set()).add(address)
    return found


async def _cases(person: Person, addresses: dict[str, set[str]]) -> list[Case]:
    query = Q(person_id=person.id)
    if addresses["email"]:
        query |= Q(requester_email__in=addresses["email"])
    if addresses["telegram"]:
        query |= Q(requester_chat__in=addresses["telegram"])
    return await Case.filter(query).order_by("number")


def _outbox_query(person: Person, addresses: dict[str, set[str]]) -> Q:
    query = Q(person_id=person.id)
    every = addresses["email"] | addresses["telegram"]
    if every:
        query |= Q(recipient__in=every)
    return query


async def _raw_from(addresses: dict[str, set[str]]) -> list[RawInbound]:
    """The raw mail and Telegram updates this person sent (mail by envelope sender, read
    without the mail itself; updates by chat), each row loaded once."""
    ids = []
    if addresses["email"]:
        ids += [row_id for row_id, envelope in await RawInbound.filter(channel="email")
                .values_list("id", "envelope")
                if str(envelope.get("from", "")).lower() in addresses["email"]]
    if addresses["telegram"]:
        for row_id, payload in await RawInbound.filter(channel="telegram").values_list(
                "id", "payload"):
            try:
                update = json.loads(bytes(payload))
            except ValueError:
                continue
            message = update.get("message") or update.get("callback_query") or {}
            chat = (message.get("chat") or message.get("from") or {}).get("id")
            if str(chat) in addresses["telegram"]:
                ids.append(row_id)
    return await RawInbound.filter(id__in=ids).order_by("id") if ids else []


async def export(person_id: int) -> dict[str, Any] | None:
    """Everything held about a person, as plain JSON-ready data; None if unknown."""
    person = await Person.get_or_none(id=person_id)
    if person is None:
        return None
    addresses = await _addresses(person)
    cases = await _cases(person, addresses)
    numbers = [c.number for c in cases]
    events = await CaseEvent.filter(case_id__in=numbers).order_by("id") if numbers else []
    files = await Attachment.filter(case_id__in=numbers).values(
        "case_id", "filename", "content_type", "size", "data") if numbers else []
    children = await Student.filter(guardians=person.id).values("id", "name", "class_name")
    raw = await _raw_from(addresses)
    return {
        "exported_at": None,  # filled in by the caller with its clock
        "person": {
            "id": person.id, "name": person.name, "roles": person.roles, "units": person.units,
            "language": person.language, "library_card": person.library_card,
            "channel_order": person.channel_order, "digest_mode": person.digest_mode,
            "digest_hour": person.digest_hour, "quiet_hours": [person.quiet_start,
                                                               person.quiet_end],
            "notices": person.notices, "last_channel": person.last_channel,
            "created_at": _when(person.created_at)},
        "addresses": {k: sorted(v) for k, v in addresses.items()},
        "children": list(children),
        "cases": [{
            "number": c.number, "subject": c.subject, "body": c.body, "status": c.status,
            "category": c.category, "created_at": _when(c.created_at),
            "history": [{"at": _when(e.created_at), "kind": e.kind, "status": e.status,
                         "text": e.text, "channel": e.channel, "public": e.public}
                        for e in events if e.case_id == c.number],
            "attachments": [{"filename": f["filename"], "content_type": f["content_type"],
                             "size": f["size"],
                             "data_base64": base64.b64encode(bytes(f["data"])).decode()}
                            for f in files if f["case_id"] == c.number]} for c in cases],
        "messages_sent_to_them": [
            {"at": _when(r.created_at), "channel": r.channel, "recipient": r.recipient,
             "status": r.status, "subject": r.payload.get("subject"),
             "text": r.payload.get("text")}
            for r in await Outbox.filter(_outbox_query(person, addresses)).order_by("id")],
        "messages_they_sent": [
            {"at": _when(r.received_at), "channel": r.channel,
             "raw": bytes(r.payload).decode("utf-8", "replace")} for r in raw],
        "announcements": list(await AnnouncementDelivery.filter(person_id=person.id).values(
            "announcement_id", "created_at", "acked_at")),
        "library": {
            "loans": list(await Loan.filter(card=person.library_card).values(
                "id", "title", "due", "renewals", "returned")) if person.library_card else [],
            "renewals": list(await Renewal.filter(card=person.library_card).values(
                "loan_id", "old_due", "new_due", "channel", "created_at"))
            if person.library_card else []},
        "waiting_notices": list(await DigestItem.filter(person_id=person.id).values(
            "kind", "lines", "created_at", "sent_at")),
        "audit_entries_about_or_by_them": list(await AuditEntry.filter(
            Q(person_id=person.id) | Q(object=f"person:{person.id}")).values(
                "at", "actor", "source", "action", "object")),
    }


async def anonymise_cases(numbers: list[str]) -> dict[str, int]:
    """Keep the cases as the town's record — number, subject, category, status, dates,
    the office's notes — and remove what the resident wrote, their attachments and every
    link to them; the search index keeps only what the cases still say. Erasure and the
    retention of closed cases both end here. Call inside a transaction."""
    if not numbers:
        return {"case_messages": 0, "attachments": 0}
    await Case.filter(number__in=numbers).update(
        body=ERASED, person_id=None, requester_email=None, requester_chat=None)
    messages = await CaseEvent.filter(case_id__in=numbers, kind__in=("message", "created")
                                      ).update(text="", message_id=None)
    attachments = await Attachment.filter(case_id__in=numbers).delete()
    await search.forget(numbers)
    kept = await CaseEvent.filter(case_id__in=numbers, kind__in=("note", "status")
                                  ).values_list("case_id", "text")
    subjects = await Case.filter(number__in=numbers).values_list("number", "subject")
    await search.index(list(kept) + list(subjects))
    return {"case_messages": messages, "attachments": attachments}


async def erase(person_id: int, actor: audit.Actor, now: datetime) -> dict[str, int] | None:
    """Erase a person (call inside a transaction). Returns what was done; None if
    unknown."""
    person = await Person.get_or_none(id=person_id)
    if person is None:
        return None
    addresses = await _addresses(person)
    every = addresses["email"] | addresses["telegram"]
    cases = await _cases(person, addresses)
    numbers = [c.number for c in cases]
    done: dict[str, int] = {"kept_cases": len(numbers), **await anonymise_cases(numbers)}
    outbox = Outbox.filter(_outbox_query(person, addresses))
    await outbox.filter(status__in=("pending", "sending")).update(status="cancelled")
    done["messages_sent"] = await Outbox.filter(_outbox_query(person, addresses)).update(
        recipient="", payload={}, fallbacks=[], person_id=None)
    if every:
        await SentMail.filter(recipient__in=every).delete()
        await Conversation.filter(key__in=[f"{c}:{a}" for c, values in addresses.items()
                                           for a in values]).delete()
    raw = await _raw_from(addresses)
    done["raw_messages"] = await RawInbound.filter(id__in=[r.id for r in raw]).delete() if raw else 0
    if person.library_card:
        done["library_rows"] = (await Loan.filter(card=person.library_card).delete()
                                + await LoanReminder.filter(card=person.library_card).delete()
                                + await Renewal.filter(card=person.library_card).delete())
    for student in await Student.filter(guardians=person.id):
        await student.guardians.remove(person)
    await AnnouncementDelivery.filter(person_id=person.id).delete()
    await DigestItem.filter(person_id=person.id).delete()
    await GradeNotice.filter(person_id=person.id).delete()
    await SignInLink.filter(person_id=person.id).delete()
    await SignInRequest.filter(person_id=person.id).delete()
    await StaffSession.filter(person_id=person.id).delete()
    await LinkCode.filter(person_id=person.id).delete()
    done["addresses"] = await Identity.filter(person_id=person.id).delete()
    await Case.filter(assignee_id=person.id).update(assignee_id=None)
    await Person.filter(id=person.id).delete()
    await audit.record(actor, "person.erase", f"person:{person_id}", now, **done)
    return done
