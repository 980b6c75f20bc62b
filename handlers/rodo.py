"""RODO (GDPR) requests: everything held about a person as one JSON document (art. 15),
and erasure (art. 17).

One function finds what is held about a person — `holdings` — by every address and
identity they have: all their addresses on every channel, their library card, their
cases (theirs, or reached at one of their addresses), the outbox rows and Message-IDs of
what we sent them, the raw input they sent — each channel says who sent a raw row of its
own (`Channel.raw_senders`: a mail by its envelope sender *and* its header
`From`/`Sender`/`Reply-To`, a Telegram update by chat and by sender, an SMS by its
number) — dialogues, waiting notices, sign-in links, sessions, link codes, stored
idempotent answers naming their cases, and the job summaries that name them. The export
reads it, the erasure removes it; neither looks for anything on its own.

Erasure removes the person, their addresses, preferences, links, sessions, conversations,
notices waiting for them, their library records, the raw input they sent on every
channel, the contents of the messages we sent them and the `.eml` copies of the mail in
the spool. Cases are records the town must keep (the office's register of matters): they stay
with their number, category, status and dates and the office's own notes, while what the
resident wrote — the subject, the body, their messages and attachments — and every link to
them is removed. The audit trail keeps its entries (it is the record of who did what,
including this erasure). What is deleted is gone from the database's files too: zeroed by
SQLite's `secure_delete`, the search index merged without it (in short steps after the
commit, so other writes go on), the write-ahead log truncated, or on PostgreSQL the
touched tables vacuumed (store/scrub.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from handlers import audit
from handlers.addresses import normalise_email
from store import scrub, search
from store.models import (
    AddressClaim,
    Announcement,
    AnnouncementDelivery,
    Attachment,
    AuditEntry,
    Case,
    CaseContact,
    CaseEvent,
    Conversation,
    DigestItem,
    DocumentSignature,
    GradeNotice,
    IdempotentRequest,
    Identity,
    JobRun,
    LinkCode,
    ListSubscription,
    Loan,
    LoanReminder,
    MailThread,
    OptOut,
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
from store.rows import change_in, chunks, read_in
from store.sql import on_postgres, sql

if TYPE_CHECKING:
    from handlers.channels import Channel, Channels

log = logging.getLogger(__name__)

ERASED = "[usunięto na wniosek RODO / erased on request]"
#: the spool's header is read this far to find a copy's recipients
HEAD_BYTES = 65536
#: rows read at a time while looking through raw input
CHUNK = 500
#: tables an erasure changes: VACUUMed after it on PostgreSQL
TOUCHED = ("person", "identity", "link_code", "address_claim", "case", "case_contact",
           "case_event", "attachment", "document_signature",
           "mail_thread", "raw_inbound", "conversation", "outbox", "sent_mail", "loan",
           "loan_reminder", "renewal", "student_guardian", "announcement_delivery",
           "digest_item", "grade_notice", "sign_in_link", "staff_session",
           "sign_in_request", "idempotent_request", "job_run", "announcement",
           "case_search")


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass
class Holdings:
    """Everything held about one person, as the ids the export reads and the erasure
    removes."""

    person: Person
    #: channel → addresses, as each channel normalises them (every registered channel)
    addresses: dict[str, set[str]]
    cases: list[str] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    outbox: list[int] = field(default_factory=list)
    sent_mail: list[str] = field(default_factory=list)
    idempotent: list[str] = field(default_factory=list)
    job_runs: list[int] = field(default_factory=list)
    #: the newest raw row looked at: a second look starts after it
    raw_seen: int = 0
    #: the newest job run looked at, and those then unfinished (a run writes its summary
    #: when it ends): a second look reads only these and the runs after it
    runs_seen: int = 0
    runs_open: list[int] = field(default_factory=list)

    @property
    def every_address(self) -> set[str]:
        return set().union(*self.addresses.values()) if self.addresses else set()

    @property
    def conversation_keys(self) -> list[str]:
        return [f"{channel}:{address}" for channel, values in self.addresses.items()
                for address in values]

    @property
    def needles(self) -> set[str]:
        """The strings that name this person in free-form data (JSON summaries)."""
        found = self.every_address
        if self.person.library_card:
            found.add(self.person.library_card)
        return found


async def holdings(person_id: int, earlier: Holdings | None = None, *,
                   channels: Channels) -> Holdings | None:
    """The one search for what is held about a person; None if there is no such person.

    Looking through the raw mail reads every stored mail's header: long at a town's scale,
    and a transaction open that long on SQLite's one connection would hold every other
    write of the process back. So the erasure looks once before its transaction and again
    inside it, where `earlier` (the first look) lets the raw rows and the job runs' summaries
    it already went through be skipped when the person's addresses have not changed since.
    `channels`: the registry, whose channels say who sent their raw rows."""
    person = await Person.get_or_none(id=person_id)
    if person is None:
        return None
    addresses: dict[str, set[str]] = {name: set() for name in channels.names}
    for name, address in await Identity.filter(person_id=person.id).values_list(
            "channel", "address"):
        channel = channels.get(name)
        normalised = channel.normalise(address) if channel is not None else None
        addresses.setdefault(name, set()).add(normalised or address)
    held = Holdings(person, addresses)
    held.cases = await _cases(person, addresses)
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    held.outbox = list(await Outbox.filter(_outbox_query(person, addresses)).order_by(  # type: ignore[arg-type]
        "id").values_list("id", flat=True))
    every = held.every_address
    held.sent_mail = list(await SentMail.filter(recipient__in=every).values_list(  # type: ignore[arg-type]
        "message_id", flat=True)) if every else []
    held.raw_seen = await _newest_raw()
    after = 0
    if earlier is not None and earlier.addresses == addresses:
        after, held.raw = earlier.raw_seen, [i for i in earlier.raw if i <= earlier.raw_seen]
    for channel in channels:
        if channel.raw_senders is not None and addresses.get(channel.name):
            held.raw += await _raw_from(channel, addresses[channel.name], after,
                                        held.raw_seen)
    held.idempotent = await _idempotent_naming(set(held.cases) | every)
    held.runs_seen, held.runs_open = await _runs_so_far()
    if earlier is not None and earlier.needles == held.needles:
        again = set(earlier.runs_open)
        held.job_runs = sorted({i for i in earlier.job_runs if i not in again} | set(
            await _job_runs_naming(held.needles, earlier.runs_seen, again)))
    else:
        held.job_runs = await _job_runs_naming(held.needles)
    return held


async def _cases(person: Person, addresses: dict[str, set[str]]) -> list[str]:
    """Their cases, and the cases reached at one of their addresses (on its channel:
    case_contact's (channel, address) index)."""
    numbers = set(await Case.filter(person_id=person.id).values_list("number", flat=True))
    for channel, values in addresses.items():
        if values:
            numbers |= set(await CaseContact.filter(channel=channel, address__in=values)
                           .values_list("case_id", flat=True))
    return sorted(str(number) for number in numbers)


def _outbox_query(person: Person, addresses: dict[str, set[str]]) -> Q:
    """Rows for the person, or to any of their addresses on that address's channel (a
    chat id is no email address, and another channel's number may look like one)."""
    query = Q(person_id=person.id)
    for channel, values in addresses.items():
        if values:
            query |= Q(channel=channel, recipient__in=values)
    return query


async def _newest_raw() -> int:
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    newest: list[int] = await RawInbound.all().order_by("-id").limit(1).values_list(  # type: ignore[assignment]
        "id", flat=True)
    return int(newest[0]) if newest else 0


async def _raw_from(channel: Channel, addresses: set[str], after: int, upto: int
                    ) -> list[int]:
    """Raw rows of `channel` (ids in `after` < id <= `upto`) that the channel says one of
    `addresses` sent, read a chunk at a time and, where the channel needs only the start
    of a payload (a mail's header, not its attachments), only that much, unless it asks
    for the whole."""
    assert channel.raw_senders is not None
    db = get_connection("default")
    head = channel.raw_head
    payload = "substr(payload, 1, ?)" if head else "payload"
    statement = sql(db, f"SELECT id, envelope, {payload} AS payload, length(payload) AS size "
                        "FROM raw_inbound WHERE channel = ? AND id > ? AND id <= ? "
                        "ORDER BY id LIMIT ?")
    found: list[int] = []
    last = after
    while True:
        _, rows = await db.execute_query(
            statement, [*([head] if head else []), channel.name, last, upto, CHUNK])
        for row in rows:
            last = row["id"]
            envelope = row["envelope"]
            envelope = json.loads(envelope) if isinstance(envelope, (str, bytes)) else envelope
            data = bytes(row["payload"])
            stored = RawInbound(id=row["id"], channel=channel.name, envelope=envelope,
                                payload=data)
            senders = channel.raw_senders(stored, bool(head) and row["size"] > len(data))
            if senders is None:  # the channel needs the whole payload
                whole = await RawInbound.filter(id=row["id"]).values_list("payload", flat=True)
                stored.payload = bytes(whole[0]) if whole else data
                senders = channel.raw_senders(stored, False) or set()
            if senders & addresses:
                found.append(row["id"])
        if len(rows) < CHUNK:
            return found


async def _idempotent_naming(needles: set[str]) -> list[str]:
    """Stored answers to idempotent requests that name one of the person's cases or
    addresses (they are kept a day: the table is small)."""
    if not needles:
        return []
    return [key for key, response in await IdempotentRequest.all().values_list(
        "key", "response") if _mentions(response, needles)]


async def _runs_so_far() -> tuple[int, list[int]]:
    """The newest job run's id, and the runs not finished yet."""
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    newest: list[int] = await JobRun.all().order_by("-id").limit(1).values_list(  # type: ignore[assignment]
        "id", flat=True)
    open_runs: list[int] = await JobRun.filter(finished_at__isnull=True).values_list(  # type: ignore[assignment]
        "id", flat=True)
    return (int(newest[0]) if newest else 0), sorted(open_runs)


async def _job_runs_naming(needles: set[str], after: int = 0, also: Iterable[int] = ()
                           ) -> list[int]:
    """Job runs (with an id above `after`, or in `also`) whose summary names the person
    (the overdue run lists the readers it could not reach, by card and name). The text
    search narrows in the database; `_mentions` decides. Every run's summary is scanned
    once per needle: the look inside the erasure's transaction passes `after` and the
    runs then unfinished, so it reads only what changed since the first look."""
    if not needles:
        return []
    db = get_connection("default")
    text = "summary::text" if on_postgres(db) else "summary"
    extra = list(also)
    which = "id > ?" + (f" OR id IN ({','.join('?' * len(extra))})" if extra else "")
    ids: set[int] = set()
    for needle in needles:
        _, rows = await db.execute_query(
            sql(db, f"SELECT id, summary FROM job_run WHERE ({which}) AND {text} LIKE ?"),
            [after, *extra, f"%{needle}%"])
        for row in rows:
            summary = row["summary"]
            summary = json.loads(summary) if isinstance(summary, str) else summary
            if _mentions(summary, needles):
                ids.add(row["id"])
    return sorted(ids)


def _mentions(value: Any, needles: set[str]) -> bool:
    if isinstance(value, dict):
        return any(_mentions(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needles) for v in value)
    return isinstance(value, (str, int)) and str(value) in needles


def _without(value: Any, needles: set[str]) -> Any:
    """`value` with every entry that names the person left out: a list loses the items
    that mention them, a field that is one of their identifiers is erased."""
    if isinstance(value, dict):
        return {k: _without(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(v, needles) for v in value if not _mentions(v, needles)]
    return ERASED if _mentions(value, needles) else value


async def _opt_outs(addresses: dict[str, set[str]]) -> list[tuple[str, str, Any]]:
    """The opt-outs of these addresses, channel by channel."""
    found: list[tuple[str, str, Any]] = []
    for channel, values in sorted(addresses.items()):
        if values:
            found += await OptOut.filter(channel=channel, address__in=sorted(values)
                                         ).order_by("id").values_list("channel", "address",
                                                                      "since")
    return found


async def export(person_id: int, *, channels: Channels) -> dict[str, Any] | None:
    """Everything held about a person, as plain JSON-ready data; None if unknown."""
    held = await holdings(person_id, channels=channels)
    if held is None:
        return None
    person, addresses, numbers = held.person, held.addresses, held.cases
    cases = await Case.filter(number__in=numbers).order_by("number") if numbers else []
    events = await CaseEvent.filter(case_id__in=numbers).order_by("id") if numbers else []
    contacts = await CaseContact.filter(case_id__in=numbers).order_by("id").values_list(
        "case_id", "channel", "address") if numbers else []
    files = await Attachment.filter(case_id__in=numbers).values(
        "id", "case_id", "filename", "content_type", "size", "data") if numbers else []
    # what the verification of their signed files found: the signer is personal data
    signed = await DocumentSignature.filter(case_id__in=numbers).order_by("id").values(
        "attachment_id", "signed_attachment_id", "kind", "status", "signer", "signed_at",
        "qualified", "detail", "checked_at") if numbers else []
    children = await Student.filter(guardians=person.id).values("id", "name", "class_name")
    raw = await read_in(held.raw, lambda part: RawInbound.filter(id__in=part).order_by("id"))
    card = person.library_card
    return {
        "exported_at": None,  # filled in by the caller with its clock
        "person": {
            "id": person.id, "name": person.name, "roles": person.roles, "units": person.units,
            "language": person.language, "library_card": card,
            "student_id": person.student_id,
            "channel_order": person.channel_order, "digest_mode": person.digest_mode,
            "digest_hour": person.digest_hour, "quiet_hours": [person.quiet_start,
                                                               person.quiet_end],
            "notices": person.notices, "last_channel": person.last_channel,
            "plain_letters": person.plain_letters, "created_at": _when(person.created_at)},
        # an address that said STOP: exported, and kept by the erasure (a suppression
        # list — erasing it would let the channel start again; README, RODO)
        "opt_outs": [{"channel": channel, "address": address, "since": _when(since)}
                     for channel, address, since in await _opt_outs(addresses)],
        "addresses": {k: sorted(v) for k, v in addresses.items()},
        "children": list(children),
        # a pupil's own account (#20): the register's Student it is tied to
        "own_student": await Student.filter(id=person.student_id).first().values(
            "id", "name", "class_name") if person.student_id else None,
        "cases": [{
            "number": c.number, "subject": c.subject, "body": c.body, "status": c.status,
            "category": c.category, "created_at": _when(c.created_at),
            "contacts": [{"channel": channel, "address": address}
                         for number, channel, address in contacts if number == c.number],
            "history": [{"at": _when(e.created_at), "kind": e.kind, "status": e.status,
                         "text": e.text, "channel": e.channel, "public": e.public,
                         "message_id": e.message_id}
                        for e in events if e.case_id == c.number],
            "attachments": [{"filename": f["filename"], "content_type": f["content_type"],
                             "size": f["size"],
                             "data_base64": base64.b64encode(bytes(f["data"])).decode(),
                             "signatures": [{
                                 "kind": s["kind"], "status": s["status"],
                                 "signer": s["signer"], "signed_at": _when(s["signed_at"]),
                                 "qualified": s["qualified"], "detail": s["detail"],
                                 "checked_at": _when(s["checked_at"]),
                                 "signs_file": next((g["filename"] for g in files
                                                     if g["id"] == s["signed_attachment_id"]),
                                                    None)}
                                 for s in signed if s["attachment_id"] == f["id"]]}
                            for f in files if f["case_id"] == c.number]} for c in cases],
        "messages_sent_to_them": [
            {"at": _when(r.created_at), "channel": r.channel, "recipient": r.recipient,
             "status": r.status, "subject": r.payload.get("subject"),
             "text": r.payload.get("text"), "message_id": r.payload.get("message_id")}
            for r in await read_in(held.outbox, lambda part: Outbox.filter(
                id__in=part).order_by("id"))],
        "message_ids_sent_to_them": sorted(held.sent_mail),
        "messages_they_sent": [
            {"at": _when(r.received_at), "channel": r.channel,
             "envelope_from": (r.envelope or {}).get("from"),
             "raw": bytes(r.payload).decode("utf-8", "replace")} for r in raw],
        "dialogues": list(await Conversation.filter(key__in=held.conversation_keys).values(
            "key", "kind", "step", "data", "updated_at")),
        "announcements": list(await AnnouncementDelivery.filter(person_id=person.id).values(
            "announcement_id", "created_at", "acked_at")),
        "announcements_written": list(await Announcement.filter(author_id=person.id).values(
            "id", "title", "status", "created_at")),
        "library": {
            "card": card,
            "loans": list(await Loan.filter(card=card).values(
                "id", "title", "due", "renewals", "returned")) if card else [],
            "reminders": list(await LoanReminder.filter(card=card).values(
                "loan_id", "level", "created_at")) if card else [],
            "renewals": list(await Renewal.filter(card=card).values(
                "loan_id", "old_due", "new_due", "channel", "created_at")) if card else []},
        "reading_list_subscriptions": list(await ListSubscription.filter(
            person_id=person.id).values("list_id", "created_at")),
        "waiting_notices": list(await DigestItem.filter(person_id=person.id).values(
            "kind", "lines", "created_at", "sent_at")),
        "waiting_grade_notices": list(await GradeNotice.filter(person_id=person.id).values(
            "student_id", "grade_id", "created_at", "sent_at")),
        "bot_link_codes": list(await LinkCode.filter(person_id=person.id).values(
            "expires_at", "used_at")),
        "address_claims": list(await AddressClaim.filter(person_id=person.id).values(
            "channel", "address", "attempts", "created_at", "expires_at", "used_at")),
        "console_sign_in_links": list(await SignInLink.filter(person_id=person.id).values(
            "expires_at", "used_at")),
        "console_sessions": list(await StaffSession.filter(person_id=person.id).values(
            "created_at", "last_seen_at", "ended_at")),
        "stored_answers_to_requests": list(await IdempotentRequest.filter(
            key__in=held.idempotent).values("response", "created_at")) if held.idempotent
        else [],
        "job_summaries_naming_them": [
            {"job": job, "due": due, "summary": summary}
            for job, due, summary in await JobRun.filter(id__in=held.job_runs).values_list(
                "job", "due", "summary")] if held.job_runs else [],
        "audit_entries_about_or_by_them": list(await AuditEntry.filter(
            Q(person_id=person.id) | Q(object=f"person:{person.id}")).values(
                "at", "actor", "source", "action", "object")),
    }


async def anonymise_cases(numbers: list[str]) -> dict[str, int]:
    """Keep the cases as the town's record — number, category, status, dates, the
    office's notes — and remove what the resident wrote (the subject too), their
    attachments and every link to them; the search index keeps only what the cases still
    say. Erasure and the retention of closed cases both end here. Call inside a
    transaction, and `search.purge()` once after the last transaction has committed."""
    if not numbers:
        return {"case_messages": 0, "attachments": 0}
    await Case.filter(number__in=numbers).update(subject=ERASED, body=ERASED, person_id=None)
    await CaseContact.filter(case_id__in=numbers).delete()
    messages = await CaseEvent.filter(case_id__in=numbers, kind__in=("message", "created")
                                      ).update(text="", message_id=None)
    # the foreign key cascades as well; deleted by name so no engine's setting decides it
    await DocumentSignature.filter(case_id__in=numbers).delete()
    attachments = await Attachment.filter(case_id__in=numbers).delete()
    # a reply to our old mail would otherwise still find the case by its thread
    await MailThread.filter(case_id__in=numbers).delete()
    await search.forget(numbers)
    kept = await CaseEvent.filter(case_id__in=numbers, kind__in=("note", "status")
                                  ).values_list("case_id", "text")
    await search.index(list(kept))
    return {"case_messages": messages, "attachments": attachments}


async def erase(person_id: int, actor: audit.Actor, now: datetime, *, channels: Channels,
                spool_dir: str = "") -> dict[str, Any] | None:
    """Erase a person: the rows in one transaction (opened here: do not call inside one),
    then the files — the `.eml` copies in `spool_dir` and what the database keeps beside
    its tables (store/scrub.py). Returns what was done; None if unknown."""
    first = await holdings(person_id, channels=channels)
    if first is None:
        return None
    async with in_transaction():
        held = await holdings(person_id, first, channels=channels)
        if held is None:  # erased by someone else meanwhile
            return None
        done = await _erase_rows(held, actor, now)
    files = [str(p) for p in spooled_files(spool_dir, held.outbox, held.every_address)]
    done["spool_files"] = remove_files(files)
    done["files"] = await scrub.settle(TOUCHED)
    return done


async def _erase_rows(held: Holdings, actor: audit.Actor, now: datetime) -> dict[str, Any]:
    person, numbers = held.person, held.cases
    done: dict[str, Any] = {"kept_cases": len(numbers), **await anonymise_cases(numbers)}
    await CaseEvent.filter(author_id=person.id).update(author_id=None)
    await change_in(held.outbox, lambda part: Outbox.filter(
        id__in=part, status__in=("pending", "sending")).update(status="cancelled"))
    done["messages_sent"] = await change_in(held.outbox, lambda part: Outbox.filter(
        id__in=part).update(recipient="", payload={}, fallbacks=[], person_id=None,
                            last_error=""))
    # the key may hold the address (`<notice>:<address>` for a requester without an
    # account); it must stay unique, so the row's own id takes its place
    db = get_connection("default")
    for part in chunks(held.outbox):
        await db.execute_query(sql(db, "UPDATE outbox SET idempotency_key = 'erased:' || "
                                       "CAST(id AS VARCHAR(20)) WHERE id IN "
                                       f"({','.join('?' * len(part))})"), part)
    await change_in(held.sent_mail, lambda part: SentMail.filter(message_id__in=part).delete())
    await Conversation.filter(key__in=held.conversation_keys).delete()
    done["raw_messages"] = await change_in(
        held.raw, lambda part: RawInbound.filter(id__in=part).delete())
    if held.idempotent:
        await IdempotentRequest.filter(key__in=held.idempotent).delete()
    for run in await JobRun.filter(id__in=held.job_runs) if held.job_runs else []:
        await JobRun.filter(id=run.id).update(summary=_without(run.summary, held.needles))
    card = person.library_card
    if card:
        done["library_rows"] = (await LoanReminder.filter(card=card).delete()
                                + await Renewal.filter(card=card).delete()
                                + await Loan.filter(card=card).delete())
    for student in await Student.filter(guardians=person.id):
        await student.guardians.remove(person)
    await AnnouncementDelivery.filter(person_id=person.id).delete()
    await DigestItem.filter(person_id=person.id).delete()
    await GradeNotice.filter(person_id=person.id).delete()
    await SignInLink.filter(person_id=person.id).delete()
    await SignInRequest.filter(person_id=person.id).delete()
    await StaffSession.filter(person_id=person.id).delete()
    await LinkCode.filter(person_id=person.id).delete()
    await AddressClaim.filter(person_id=person.id).delete()
    await ListSubscription.filter(person_id=person.id).delete()
    done["addresses"] = await Identity.filter(person_id=person.id).delete()
    await Case.filter(assignee_id=person.id).update(assignee_id=None)
    # the office's notices stay, no longer naming who wrote them
    await Announcement.filter(author_id=person.id).update(author_id=None)
    await Person.filter(id=person.id).delete()
    await audit.record(actor, "person.erase", f"person:{person.id}", now, **done)
    return done


def spooled_files(folder: str, outbox_ids: Iterable[int], addresses: set[str]) -> list[Path]:
    """The `.eml` copies of mail to the person in the spool (no relay set): by the outbox
    row each was written for (mail/sender.py names it by the row's id), and, for copies
    whose row retention already removed, by the recipients in their header."""
    if not folder or not os.path.isdir(folder):
        return []
    spool = Path(folder)
    found = {spool / f"{row_id:010d}.eml" for row_id in outbox_ids}
    for path in spool.glob("*.eml"):
        if path in found:
            continue
        try:
            with path.open("rb") as file:
                head = file.read(HEAD_BYTES)
            header = BytesHeaderParser(policy=compat32).parsebytes(head)
            values = [str(v) for name in ("To", "Cc", "Bcc")
                      for v in header.get_all(name, [])]
        except (OSError, Exception):  # noqa: BLE001 - an unreadable copy is left as it is
            continue
        if {normalise_email(a) for _, a in getaddresses(values)} & addresses:
            found.add(path)
    return sorted(p for p in found if p.exists())


def remove_files(paths: Iterable[str]) -> int:
    """Overwrite each file with zeros, then delete it. The overwrite is best effort: a
    journalling or copy-on-write file system or an SSD may keep the old blocks, which only
    full-disk encryption of the host answers (README)."""
    removed = 0
    for name in paths:
        try:
            size = os.path.getsize(name)
            with open(name, "r+b") as file:
                file.write(b"\0" * size)
                file.flush()
                os.fsync(file.fileno())
            os.unlink(name)
            removed += 1
        except FileNotFoundError:  # retention or another instance got there first
            continue
    return removed
