"""Case submission and case status: residents' cases at the town office.

A case is numbered `UM-YYYY-NNNNNN`, sequential per year. Numbers come from a counter row
bumped with `UPDATE … SET value = value + n` inside the creating transaction: the row lock
makes numbers unique across processes on PostgreSQL, and a rolled-back transaction gives
its numbers back (gap-tolerant, never duplicate).

Only the requester learns anything about a case: the person who opened it, anyone
holding its access code, or a request from the address it was opened from. Everyone else
gets the same polite refusal whether or not the number exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import TransactionalDBClient
from tortoise.transactions import in_transaction

from handlers import audit, fanout, i18n, quota
from handlers.accounts import people_by_address
from handlers.context import ServiceContext
from handlers.message import Attachment, InboundMessage, Reply
from handlers.notify import ordered_channels
from store import search
from store.models import Attachment as StoredAttachment
from store.models import (
    Case,
    CaseContact,
    CaseEvent,
    Counter,
    Identity,
    MailThread,
    Outbox,
    Person,
)
from store.outbox import Delivery, without_opted_out
from store.rows import insert_rows
from store.sql import sql

CASE_NUMBER = re.compile(r"\bUM-(\d{4})-(\d{6})\b", re.IGNORECASE)
CASE_TAG = re.compile(r"\[(UM-\d{4}-\d{6})\]", re.IGNORECASE)
#: no 0/O/1/I/l: access codes are read off paper and typed by hand
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


#: 16 symbols of 32 = 80 bits, typed as four groups of four (ABCD-EFGH-JKMN-PQRS)
CODE_LENGTH = 16
_CODE_CANDIDATE = re.compile(r"\b[A-Za-z0-9]{4}(?:[- ]?[A-Za-z0-9]{4}){3}\b")


def normalise_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def hash_code(key: bytes, code: str) -> str:
    """A keyed hash (HMAC-SHA256 with a store-kept key): a leaked table of hashes does
    not let anyone test codes offline. Prefixed so the format can change again."""
    digest = hmac.new(key, normalise_code(code).encode(), hashlib.sha256).digest()
    return "k1:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def code_matches(key: bytes, stored: str, code: str) -> bool:
    if not stored.startswith("k1:"):  # cases opened before the keyed hash: plain SHA-256
        legacy = hashlib.sha256(code.strip().upper().encode()).hexdigest()
        return hmac.compare_digest(stored, legacy)
    return hmac.compare_digest(stored, hash_code(key, code))


def new_access_code() -> str:
    """16 symbols from 80 random bits, 5 bits each (one draw, not sixteen: a tenth of
    the case endpoint's CPU went to `secrets.choice`)."""
    bits = int.from_bytes(secrets.token_bytes(CODE_LENGTH * 5 // 8), "big")
    raw = "".join(_CODE_ALPHABET[(bits >> (5 * n)) & 31] for n in range(CODE_LENGTH))
    return "-".join(raw[n:n + 4] for n in range(0, CODE_LENGTH, 4))


def code_in_text(key: bytes, case: Case, *texts: str | None) -> bool:
    """Whether the case's access code appears in any of `texts` (a proof of identity)."""
    for text in texts:
        for candidate in _CODE_CANDIDATE.findall((text or "")[:20_000]):
            if code_matches(key, case.access_code_hash, candidate):
                return True
    return False


def find_number(text: str | None) -> str | None:
    match = CASE_NUMBER.search(text or "")
    return f"UM-{match.group(1)}-{match.group(2)}" if match else None


_BUMP_COUNTER = (
    'INSERT INTO "counter" ("name", "value") VALUES (?, ?) ON CONFLICT ("name") '
    'DO UPDATE SET "value" = "counter"."value" + excluded."value" RETURNING "value"'
)


async def allocate_numbers(year: int, count: int) -> list[str]:
    """Reserve `count` consecutive case numbers of `year`. Call inside a transaction.

    One upsert with `RETURNING` (SQLite ≥ 3.35, PostgreSQL): it creates the year's
    counter or bumps it under the row lock, and says where it now stands. Written as SQL
    because the ORM needs three round trips (create-if-missing, `F()` update, read back)."""
    db = Counter._meta.db
    rows = await db.execute_query_dict(sql(db, _BUMP_COUNTER), [f"case-{year}", count])
    last = int(rows[0]["value"])
    return [f"UM-{year}-{n:06d}" for n in range(last - count + 1, last + 1)]


@dataclass
class NewCase:
    """A case as submitted, before it has a number."""

    subject: str
    body: str
    channel: str
    category: str | None = None
    person: Person | None = None
    #: where the requester is reached: (channel, address) pairs, one per channel
    contacts: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    lang: str = "pl"
    #: the Message-ID of the mail that opened it (a clerk's reply is threaded to it)
    message_id: str | None = None


async def drafts_by_address(drafts: list[NewCase]) -> list[NewCase]:
    """Drafts naming an address, with that address's person (and language) if it is one
    of ours: the case is theirs too, whichever way it came in. One lookup per channel
    named, for the whole batch."""
    wanted: dict[str, set[str]] = {}
    for draft in drafts:
        for channel, address in draft.contacts:
            wanted.setdefault(channel, set()).add(address)
    owners = {(channel, address): person for channel, addresses in wanted.items()
              for address, person in (await people_by_address(channel, addresses)).items()}
    out = []
    for draft in drafts:
        owner = next((owners[c] for c in draft.contacts if c in owners), None)
        out.append(replace(draft, person=owner, lang=owner.language)
                   if owner is not None and draft.person is None else draft)
    return out


async def create_cases(
    ctx: ServiceContext, drafts: list[NewCase], *, confirm: bool
) -> list[tuple[Case, str, Delivery | None]]:
    """Create cases (one counter bump for all) and, where asked, build the confirmation
    with the access code to each draft's contacts (one of them: the fan-out's order, the
    rest its fallbacks). The API and a clerk's case from unread mail ask; mail and the
    chat channels answer in their own reply instead.

    Call inside a transaction, and queue the confirmations with `notify.queue` in it.
    Returns (case, access code, confirmation or None).
    """
    now = ctx.clock.now()
    numbers = await allocate_numbers(now.astimezone(ctx.zone).year, len(drafts))
    cases, events, files, out = [], [], [], []
    contacts: list[CaseContact] = []
    for number, draft in zip(numbers, drafts, strict=True):
        code = new_access_code()
        case = Case(
            number=number,
            subject=draft.subject[:300],
            body=draft.body,
            category=draft.category,
            status="received",
            access_code_hash=hash_code(ctx.code_key, code),
            person_id=draft.person.id if draft.person else None,
            origin_channel=draft.channel,
            last_channel=draft.channel,
            created_at=now,
            updated_at=now,
        )
        cases.append(case)
        events.append(
            CaseEvent(case_id=number, kind="created", status="received", text="",
                      channel=draft.channel, created_at=now, message_id=draft.message_id)
        )
        files.extend(_stored_attachments(ctx, number, draft.attachments, now))
        contacts.extend(CaseContact(case_id=number, channel=channel, address=address)
                        for channel, address in _one_per_channel(draft.contacts))
        delivery = None
        if confirm and draft.contacts:
            # a confirmation answers what the resident just did: no waiting for the morning
            planned = fanout.plan(ctx, [fanout.Recipient(draft.person, list(draft.contacts),
                                                         draft.lang)], fanout.Notice(
                kind="cases", template="case_created", key=f"case-created:{number}",
                context={"case": case, "access_code": code}, urgent=True, case=number,
                cause=about(number)), now)
            delivery = planned.deliveries[0] if planned.deliveries else None
        out.append((case, code, delivery))
    await insert_rows(cases)
    await insert_rows(events)
    await insert_rows(contacts)
    await search.index((text for case in cases for text in ((case.number, case.subject),
                                                            (case.number, case.body))),
                       new_cases=True)
    if files:
        await StoredAttachment.bulk_create(files)
    return out


def _one_per_channel(contacts: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The first address named on each channel (a case keeps one per channel)."""
    first: dict[str, str] = {}
    for channel, address in contacts:
        first.setdefault(channel, address)
    return list(first.items())


def about(number: str) -> str:
    """The outbox `cause` of every message about a case (its notices, and the replies
    that name it, handlers/router.py): what a text without threading answers
    (`handle_text`), found by the cause's index."""
    return f"case:{number}"


def _stored_attachments(
    ctx: ServiceContext, number: str, attachments: tuple[Attachment, ...], now: datetime
) -> list[StoredAttachment]:
    kept = []
    for a in attachments:
        if len(a.data) > ctx.attachment_max_size:
            continue  # listed in the case text by the mail parser; too big to keep
        kept.append(StoredAttachment(case_id=number, filename=a.filename[:255],
                                     content_type=a.content_type[:127], size=len(a.data),
                                     data=a.data, created_at=now))
    return kept


async def case_for_requester(
    number: str | None, msg: InboundMessage, person: Person | None
) -> Case | None:
    """The case if the sender is its requester, else None (no existence leak)."""
    if not number:
        return None
    case = await Case.get_or_none(number=number.upper())
    if case is None:
        return None
    if person is not None and case.person_id == person.id:
        return case
    contacts = await contacts_of(case)
    if (msg.channel, msg.address) in contacts:
        return case
    if person is not None and contacts and contacts & set(
            await Identity.filter(person_id=person.id).values_list("channel", "address")):
        return case  # an address it came from is one the town linked to this person
    return None


async def contacts_of(case: Case) -> set[tuple[str, str]]:
    """The (channel, address) pairs the case's requester is reached at."""
    return set(await CaseContact.filter(case_id=case.number).values_list("channel", "address"))


async def add_contact(ctx: ServiceContext, number: str, msg: InboundMessage) -> None:
    """Remember the message's channel and address as the case's contact there, unless the
    case has one on that channel already (the first stays). Only a registered channel's
    address is one (the case page's messages come by no channel a notice can take)."""
    if msg.address and msg.channel in ctx.channels:
        await CaseContact.bulk_create(
            [CaseContact(case_id=number, channel=msg.channel, address=msg.address)],
            ignore_conflicts=True)


async def public_history(case: Case) -> list[CaseEvent]:
    return await CaseEvent.filter(case_id=case.number, public=True).order_by("created_at", "id")


def status_reply(case: Case, history: list[CaseEvent]) -> Reply:
    return Reply("case_status", {"case": case, "history": history}, case=case.number)


def with_refused(text: str, refused: list[quota.Refused]) -> str:
    """The text with the files that were not stored, and why, for the clerk (Polish)."""
    if not refused:
        return text
    listed = "; ".join(f"{r.name} ({i18n.file_size(r.size, 'pl')}): {i18n.refusal(r, 'pl')}"
                       for r in refused)
    return f"{text}\n\n[Załączniki niezapisane: {listed}]".strip()


def _transaction() -> AbstractAsyncContextManager[Any]:
    """The caller's transaction if one is open (the inbox answers a batch of mail in one,
    with its marks and replies), else a new one: a write to a case is atomic either way,
    and joining costs no savepoint."""
    db = connections.get("default")
    return nullcontext(db) if isinstance(db, TransactionalDBClient) else in_transaction()


async def _locked(number: str) -> Case:
    """The case's row read again inside the transaction and locked to its end
    (`SELECT … FOR UPDATE` on PostgreSQL): writes to one case take turns, so a note never
    writes back a status read before a concurrent change, and a notice tells what is
    stored. SQLite has no row locks and needs none: a transaction holds the process's one
    connection, and the database's write lock from its first write."""
    return await Case.select_for_update().get(number=number)


async def add_message(case: Case, msg: InboundMessage, ctx: ServiceContext
                      ) -> list[quota.Refused]:
    """Append a resident's follow-up to the case and remember the channel they used;
    returns the attachments that were not stored (handlers/quota.py says which and why).
    The one path for mail, the bot and the case page: the quota's verdict, the event, its
    files, its words in the search index and the case row are written in one transaction
    with the case row locked (issue #18: two posts from the case page at the same moment
    lost half their attachments and words when each step committed alone, and two posts
    checked against the same free room could each go past a case's limit)."""
    now = ctx.clock.now()
    async with _transaction():
        current = await _locked(case.number)
        admitted = await quota.admit(ctx, case.number, msg)
        refused = admitted.refused
        text = with_refused(msg.text.strip(), refused)
        threaded = msg.channel in ctx.channels and ctx.channels[msg.channel].threaded
        await CaseEvent.create(case_id=case.number, kind="message", text=text, public=True,
                               channel=msg.channel, created_at=now,
                               message_id=msg.message_id if threaded else None)
        await search.index([(case.number, text)] + [(case.number, a.filename)
                                                    for a in msg.attachments])
        files = _stored_attachments(ctx, case.number, tuple(admitted.kept), now)
        if files:
            await StoredAttachment.bulk_create(files)
        await add_contact(ctx, current.number, msg)
        await Case.filter(number=case.number).update(last_channel=msg.channel, updated_at=now)
    return refused


# --- email: sprawy@ -------------------------------------------------------------------


async def case_of_thread(msg: InboundMessage) -> str | None:
    """The case an email belongs to: its `[UM-…]` tag, else a reply to our own mail."""
    tag = CASE_TAG.search(msg.subject or "")
    if tag:
        return tag.group(1).upper()
    if msg.references:
        thread = await MailThread.filter(message_id__in=msg.references).first()
        if thread:
            return thread.case_id
    return None


STATUS_SUBJECT = re.compile(r"^status\s+(UM-\d{4}-\d{6})$", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^((re|odp|aw|fwd?)\s*:\s*)+", re.IGNORECASE)


async def status_request(msg: InboundMessage, subject: str) -> str | None:
    """The case whose status this mail asks for, or None for any other mail: only a
    subject of exactly `status UM-YYYY-NNNNNN`, or `status` alone (as the subject or the
    first line) in a reply to our mail about a case. "Status prawny działki…" is a case."""
    match = STATUS_SUBJECT.match(" ".join(subject.split()))
    if match:
        return match.group(1).upper()
    first_line = next((line.strip() for line in msg.text.splitlines() if line.strip()), "")
    bare = _REPLY_PREFIX.sub("", subject).strip().lower()
    if bare == "status" or (first_line.lower() == "status" and msg.references):
        return await case_of_thread(msg) or (find_number(subject) if bare == "status" else None)
    return None


async def handle_email(
    ctx: ServiceContext, msg: InboundMessage, person: Person | None
) -> list[Reply]:
    subject = (msg.subject or "").strip()
    lowered = subject.lower()
    number = await status_request(msg, subject)
    if number is not None:
        case = await case_for_requester(number, msg, person)
        if case is None:
            return [Reply("case_not_yours", {"number": number})]
        return [status_reply(case, await public_history(case))]
    if lowered in ("telegram", "bot", "połącz", "polacz"):
        from handlers.accounts import link_by_email

        return await link_by_email(ctx, msg, person)

    number = await case_of_thread(msg)
    if number:
        case = await case_for_requester(number, msg, person)
        if case is None:
            return [Reply("case_not_yours", {"number": number})]
        if not msg.proof and not code_in_text(ctx.code_key, case, msg.subject, msg.text):
            return [Reply("proof_needed", {"mailbox": "sprawy", "number": case.number},
                          case=case.number)]
        refused = await add_message(case, msg, ctx)
        return [Reply("case_message_added", {"case": case, "too_large": refused},
                      case=case.number)]

    body = msg.text.strip()
    if not body and not subject:
        return [Reply("case_empty", {})]
    admitted = await quota.admit(ctx, None, msg)
    refused = admitted.refused
    draft = NewCase(
        subject=subject or body.splitlines()[0][:120],
        body=with_refused(body, refused),
        channel=msg.channel,
        person=person if msg.proof else None,  # a forged From must not file in their name
        contacts=((msg.channel, msg.address),),
        attachments=tuple(admitted.kept),
        lang=person.language if person else "pl",
        message_id=msg.message_id,
    )
    [(case, code, _)] = await create_cases(ctx, [draft], confirm=False)
    return [Reply("case_created", {"case": case, "access_code": code, "too_large": refused},
                  case=case.number)]


# --- Telegram: /sprawa dialogue and /status --------------------------------------------


async def start_dialogue(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    """`/sprawa` opens a new case; `/sprawa UM-…` adds the next message to that case."""
    from handlers.dialogue import begin

    number = find_number(" ".join(msg.args))
    if number:
        case = await case_for_requester(number, msg, person)
        if case is None:
            return [Reply("case_not_yours", {"number": number})]
        await begin(ctx, msg, "case_message", "text", {"number": case.number})
        return [Reply("case_ask_message", {"case": case})]
    await begin(ctx, msg, "case", "subject")
    return [Reply("case_ask_subject", {})]


async def continue_message(
    ctx: ServiceContext, msg: InboundMessage, person: Person | None, step: str, data: dict
) -> tuple[list[Reply], str | None, dict]:
    """The message after `/sprawa UM-…`: added to that case (text, photos, documents)."""
    case = await case_for_requester(data.get("number"), msg, person)
    if case is None:
        return [Reply("case_not_yours", {"number": data.get("number")})], None, {}
    refused = await add_message(case, msg, ctx)
    return [Reply("case_message_added", {"case": case, "too_large": refused},
                  case=case.number)], None, {}


async def follow_up_by_reply(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                             ) -> list[Reply] | None:
    """A Telegram reply to our message about a case adds to that case; None if the
    replied-to message names no case."""
    number = find_number(msg.replying_to)
    if number is None:
        return None
    case = await case_for_requester(number, msg, person)
    if case is None:
        return [Reply("case_not_yours", {"number": number})]
    refused = await add_message(case, msg, ctx)
    return [Reply("case_message_added", {"case": case, "too_large": refused},
                  case=case.number)]


async def continue_dialogue(
    ctx: ServiceContext, msg: InboundMessage, person: Person | None, step: str, data: dict
) -> tuple[list[Reply], str | None, dict]:
    """One step of `/sprawa`: subject, then description; returns (replies, next step, data)."""
    text = msg.text.strip()
    if step == "subject":
        if len(text) < 3:
            return [Reply("case_ask_subject", {"too_short": True})], "subject", data
        return [Reply("case_ask_body", {"subject": text})], "body", {"subject": text[:300]}
    if len(text) < 3:
        return [Reply("case_ask_body", {"subject": data["subject"], "too_short": True})], "body", data
    # the requester is reached where they wrote from, and through their person's
    # identities when they are one of ours (requester_targets)
    draft = NewCase(subject=data["subject"], body=text, channel=msg.channel, person=person,
                    contacts=((msg.channel, msg.address),),
                    lang=person.language if person else "pl")
    [(case, code, _)] = await create_cases(ctx, [draft], confirm=False)
    return [Reply("case_created", {"case": case, "access_code": code}, case=case.number)], None, {}


# --- text is a case (SMS): handlers/channels.Channel.cases_by_text --------------------

#: how long after our last message about a case a plain text (SMS has no reply
#: threading) still adds to that case; later text opens a new one. Two weeks: the
#: answer to a clerk's "please send the plot number" comes within days, while a text a
#: month on is more likely about something new, and a clerk can join two cases where a
#: text added to a closed one would go unread.
FOLLOW_UP = timedelta(days=14)


async def case_texted_about(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                            ) -> Case | None:
    """The case our last message to the sender's address was about, if we sent it within
    FOLLOW_UP; None otherwise.

    Only the sender's own cases are looked at (those with this address as a contact, and
    a proven sender's person's), so the answer is one `case_for_requester` lets them add
    to; of their outbox rows to this address, the newest whose cause names one of them
    (`about`) — equality on the outbox's indexed cause, a few rows per case, never a scan
    of the outbox by recipient."""
    numbers = set(await CaseContact.filter(channel=msg.channel, address=msg.address)
                  .values_list("case_id", flat=True))
    if person is not None:
        numbers |= set(await Case.filter(person_id=person.id).values_list("number", flat=True))
    if not numbers:
        return None
    last = await Outbox.filter(
        cause__in=[about(str(number)) for number in numbers], channel=msg.channel,
        recipient=msg.address, created_at__gte=ctx.clock.now() - FOLLOW_UP,
    ).order_by("-id").first().values_list("cause", flat=True)
    if not last:
        return None
    return await case_for_requester(str(last).removeprefix("case:"), msg, person)


async def handle_text(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                      ) -> list[Reply]:
    """Plain text on a channel where text is a case (SMS): it adds to the case we last
    wrote to this address about (within FOLLOW_UP), or opens a case answered with its
    number and access code — like mail to `sprawy@`, a person who texts the town reaches a
    person, never silence. The sender is the requester by their address; `person` only
    when the channel proved them (handlers/router.handle)."""
    case = await case_texted_about(ctx, msg, person)
    if case is not None:
        refused = await add_message(case, msg, ctx)
        return [Reply("case_message_added", {"case": case, "too_large": refused},
                      case=case.number)]
    body = msg.text.strip()
    if not body:
        return [Reply("case_empty", {})]
    admitted = await quota.admit(ctx, None, msg)
    draft = NewCase(subject=body.splitlines()[0][:120], body=with_refused(body, admitted.refused),
                    channel=msg.channel, person=person, contacts=((msg.channel, msg.address),),
                    attachments=tuple(admitted.kept),
                    lang=person.language if person else i18n.language(msg.language_hint))
    [(case, code, _)] = await create_cases(ctx, [draft], confirm=False)
    return [Reply("case_created", {"case": case, "access_code": code,
                                   "too_large": admitted.refused}, case=case.number)]


async def handle_status(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    number = find_number(" ".join(msg.args))
    if number is None:
        return [Reply("case_status_usage", {})]
    case = await case_for_requester(number, msg, person)
    if case is None:
        return [Reply("case_not_yours", {"number": number})]
    await Case.filter(number=case.number).update(last_channel=msg.channel)
    return [status_reply(case, await public_history(case))]


# --- staff: status changes and notes ----------------------------------------------------


async def requester_targets(ctx: ServiceContext, case: Case
                            ) -> tuple[list[tuple[str, str]], Person | None]:
    """Where to tell the requester: the channel they last used first, then the rest.
    A paid channel (SMS) only as the fan-out's rule allows (`fanout.paid_last`) or when
    the resident last wrote by it: an answer goes back where the message came from, but
    an ordinary update is not paid for where mail reaches them. Addresses that bounce
    for good or said STOP are left out, as `fanout.addresses_of` leaves them."""
    person = await Person.get_or_none(id=case.person_id) if case.person_id else None
    pairs: list[tuple[str, str]] = []
    if person:
        pairs = list(
            await Identity.filter(person_id=person.id).values_list("channel", "address")
        )
    pairs += sorted(await contacts_of(case))
    failing = set(await Identity.filter(
        address__in=[a for _, a in pairs], failing_since__isnull=False).values_list(
            "channel", "address"))
    working = (await without_opted_out({0: [p for p in pairs if p not in failing]}))[0]
    preferred = person.channel_order if person else []
    targets = ordered_channels(working, preferred, first=case.last_channel,
                               default=ctx.channels.names)
    also = (case.last_channel,) if case.last_channel else ()
    return fanout.paid_last(ctx, person, targets, urgent=False, also=also), person


async def add_staff_event(
    ctx: ServiceContext, case: Case, *, status: str | None, note: str | None, public: bool,
    author: Person | None = None, channel: str = "api",
) -> CaseEvent:
    """Record a staff status change or note; a public one (a reply) is told to the
    requester on the channel they last used, with fallback, and in mail threaded to
    their last message.

    The event, its words in the search index, the case row and the notice commit
    together, in the caller's transaction or one of its own, with the case row locked;
    `case` is brought up to date with what is stored.
    """
    now = ctx.clock.now()
    kind = "status" if status else "note"
    async with _transaction():
        current = await _locked(case.number)
        event = await CaseEvent.create(case_id=case.number, kind=kind, status=status,
                                       text=note or "", public=public, created_at=now,
                                       channel=channel, author_id=author.id if author else None)
        await search.index([(case.number, note or "")])
        # only what this event changes: the status another writer just set stays
        changes: dict[str, Any] = {"updated_at": now}
        if status:
            changes["status"] = status
        await Case.filter(number=case.number).update(**changes)
        current.update_from_dict(changes)
        case.status, case.updated_at = current.status, now
        if public:
            targets, person = await requester_targets(ctx, current)
            await fanout.fan_out(ctx, [fanout.Recipient(person, targets, person.language
                                                        if person else "pl")], fanout.Notice(
                kind="cases", template="case_update", key=f"case-event:{event.id}",
                context={"case": current, "event": event}, case=case.number,
                cause=about(case.number),
                in_reply_to=await last_mail_of(current)), now)
    return event


def staff_audit_action(status: str | None, public: bool) -> str:
    """One name in the audit trail for a staff event, whichever channel it came by."""
    return "case.status" if status else "case.reply" if public else "case.note"


def may_handle_cases(person: Person, cases_unit: str) -> bool:
    """Staff of the unit named by EMIL_CASES_UNIT, and admins (the console shows them the
    cases and offers them as assignees)."""
    roles = person.roles or []
    return "admin" in roles or ("staff" in roles and cases_unit in (person.units or []))


def may_act(actor: audit.Actor, cases_unit: str) -> bool:
    """The one rule of every staff action on a case — reply, note, status, assign — by
    whichever channel it comes: a person who handles cases, or an API key with scope
    `cases`."""
    if actor.person is None:
        return actor.holds("cases")
    return may_handle_cases(actor.person, cases_unit)


async def staff_event(
    ctx: ServiceContext, number: str, actor: audit.Actor, *, status: str | None,
    note: str | None, public: bool, author: Person | None = None, channel: str = "api",
) -> tuple[Case, CaseEvent] | None:
    """A staff reply, note or status change — the use-case the console and the API call:
    `may_act` decides who may (else `audit.Refused`), then in one transaction the case
    row is locked, the event and its index words written, the action audited and the
    requester's notice queued. None: there is no such case."""
    action = staff_audit_action(status, public)
    if not may_act(actor, ctx.cases_unit):
        raise audit.Refused("forbidden", action)
    async with _transaction():
        case = await Case.get_or_none(number=number)  # locked by add_staff_event
        if case is None:
            return None
        event = await add_staff_event(ctx, case, status=status, note=note, public=public,
                                      author=author, channel=channel)
        await audit.record(actor, action, case.number, ctx.clock.now(), status=status,
                           public=public, length=len(note or ""))
    return case, event


async def last_mail_of(case: Case) -> str | None:
    """The Message-ID of the resident's latest mail in the case, if any."""
    found = await CaseEvent.filter(case_id=case.number, message_id__isnull=False).order_by(
        "-id").first().values_list("message_id", flat=True)
    return found  # type: ignore[return-value]


async def assign(ctx: ServiceContext, number: str, assignee: Person | None,
                 actor: audit.Actor) -> Case | None:
    """Give the case to a clerk (or to nobody), audited, in one transaction, if `may_act`
    lets the actor (else `audit.Refused`); None: there is no such case."""
    if not may_act(actor, ctx.cases_unit):
        raise audit.Refused("forbidden", "case.assign")
    now = ctx.clock.now()
    async with _transaction():
        case = await Case.select_for_update().get_or_none(number=number)
        if case is None:
            return None
        case.assignee_id = assignee.id if assignee else None
        await Case.filter(number=number).update(assignee_id=case.assignee_id, updated_at=now)
        await audit.record(actor, "case.assign", number, now, assignee=case.assignee_id)
    return case
