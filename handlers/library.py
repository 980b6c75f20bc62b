"""Library: loans synced from the library system, renewals, overdue reminders.

Renewal outcomes follow the reasons library systems such as Koha distinguish: reserved by
another reader, renewal limit reached, too soon to renew, overdue past the grace period,
account blocked, card unknown. The rules (loan period, renewal window, grace days) are
settings (`EMIL_LOAN_PERIOD_DAYS`, `EMIL_RENEW_WINDOW_DAYS`, `EMIL_LIBRARY_GRACE_DAYS`).

Reminders: a courtesy notice 2 days before the due date, then 1, 7 and 14 days overdue.
Each (loan, level, due date) is a unique row, so a level goes out once per loan however
often the job runs, and a loan renewed to a new due date starts afresh. A loan first seen
already 14 days late gets the 14-day reminder alone.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from handlers import catalogue, fanout, reading_lists
from handlers.context import ServiceContext
from handlers.identity import require_proof
from handlers.limits import check_all
from handlers.message import InboundMessage, InvalidInput, Reply
from store.models import Loan, LoanReminder, Outbox, Person, Renewal
from store.rows import read_in
from store.upsert import Upserts

#: (level, first day it applies: negative = before the due date)
LEVELS = (("overdue-14", 14), ("overdue-7", 7), ("overdue-1", 1), ("due-soon", -2))


@dataclass(frozen=True)
class LoanIn:
    id: str
    card: str
    title: str
    due: date
    renewals: int
    max_renewals: int
    reserved: bool
    returned: bool


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("", "0", "false", "nie", "no"):
        return False
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "tak", "yes"):
        return True
    if value is None:
        return False
    raise InvalidInput(where, f"'{where}' must be true or false")


def _count(value: Any, where: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(where, f"'{where}' must be a whole number") from None
    if isinstance(value, bool) or not 0 <= number <= 10_000:
        raise InvalidInput(where, f"'{where}' must be a whole number from 0 to 10000")
    return number


def parse_item(item: Any, where: str) -> LoanIn:
    if not isinstance(item, dict):
        raise InvalidInput(where, f"'{where}' must be an object")
    for name in ("id", "card", "title", "due"):
        if item.get(name) in (None, ""):
            raise InvalidInput(f"{where}.{name}", f"'{where}.{name}' is required")
    try:
        due = date.fromisoformat(str(item["due"])[:10])
    except ValueError:
        raise InvalidInput(f"{where}.due", f"'{where}.due' must be a date (YYYY-MM-DD)") from None
    loan = LoanIn(
        id=str(item["id"]).strip(), card=str(item["card"]).strip(),
        title=str(item["title"]).strip(), due=due,
        renewals=_count(item.get("renewals"), f"{where}.renewals", 0),
        max_renewals=_count(item.get("max_renewals"), f"{where}.max_renewals", 2),
        reserved=_flag(item.get("reserved"), f"{where}.reserved"),
        returned=_flag(item.get("returned"), f"{where}.returned"),
    )
    check_all(Loan, {"id": loan.id, "card": loan.card, "title": loan.title}, f"{where}.")
    return loan


def parse_batch(body: dict[str, Any]) -> list[LoanIn]:
    items = body.get("loans")
    if not isinstance(items, list):
        raise InvalidInput("loans", "'loans' must be a list")
    return list({loan.id: loan for loan in (parse_item(item, f"loans[{n}]")
                                            for n, item in enumerate(items))}.values())


def _fields(loan: LoanIn) -> dict[str, Any]:
    return {"card": loan.card, "title": loan.title, "due": loan.due, "renewals": loan.renewals,
            "max_renewals": loan.max_renewals, "reserved": loan.reserved,
            "returned": loan.returned}


async def apply_batches(ctx: ServiceContext, batches: list[list[LoanIn]]
                        ) -> list[dict[str, Any]]:
    """Upsert loans as the library system describes them, one answer per batch; the
    rows of all of them read and inserted together. Call inside a transaction."""
    now = ctx.clock.now()
    everything = [loan for batch in batches for loan in batch]
    rows = await Upserts.read(Loan, [loan.id for loan in everything], now)
    known = set(await read_in({loan.card for loan in everything}, lambda part: Person.filter(
        library_card__in=part).values_list("library_card", flat=True)))
    answers = []
    for batch in batches:
        for item in batch:
            rows.put(item.id, _fields(item))
        answers.append({"accepted": len(batch), **rows.tally("updated"),
                        "unknown_cards": sorted({loan.card for loan in batch} - known)})
    await rows.write()
    return answers


# --- renewals -----------------------------------------------------------------------------


def renewal_refusal(loan: Loan, today: date, ctx: ServiceContext, blocked: bool) -> str | None:
    """Why this loan cannot be renewed today, or None."""
    rules = ctx.library
    if blocked:
        return "blocked"
    if loan.reserved:
        return "reserved"
    if loan.renewals >= loan.max_renewals:
        return "too_many"
    if (loan.due - today).days > rules.renew_window_days:
        return "too_soon"
    if (today - loan.due).days > rules.grace_days:
        return "overdue"
    return None


async def renew_all(ctx: ServiceContext, person: Person | None, channel: str) -> Reply:
    if person is None or not person.library_card:
        return Reply("library_card_unknown", {})
    today = ctx.clock.now().astimezone(ctx.zone).date()
    loans = await Loan.filter(card=person.library_card, returned=False).order_by("due", "id")
    if not loans:
        return Reply("library_no_loans", {})
    results = []
    for loan in loans:
        reason = renewal_refusal(loan, today, ctx, person.library_blocked)
        if reason:
            results.append({"title": loan.title, "due": loan.due, "renewed": False,
                            "reason": reason})
            continue
        new_due = max(loan.due, today) + timedelta(days=ctx.library.loan_period_days)
        await Loan.filter(id=loan.id).update(due=new_due, renewals=loan.renewals + 1,
                                             updated_at=ctx.clock.now())
        await Renewal.create(loan_id=loan.id, card=loan.card, old_due=loan.due, new_due=new_due,
                             channel=channel, created_at=ctx.clock.now())
        results.append({"title": loan.title, "due": new_due, "renewed": True, "reason": None})
    return Reply("library_renewals", {"results": results,
                                      "renewed": sum(r["renewed"] for r in results)})


async def list_loans(ctx: ServiceContext, person: Person | None) -> Reply:
    if person is None or not person.library_card:
        return Reply("library_card_unknown", {})
    today = ctx.clock.now().astimezone(ctx.zone).date()
    loans = await Loan.filter(card=person.library_card, returned=False).order_by("due", "id")
    return Reply("library_loans", {"loans": [{"title": x.title, "due": x.due,
                                              "overdue": x.due < today} for x in loans]})


async def handle_loans(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    return [await list_loans(ctx, person)]


async def handle_renew(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    return [await renew_all(ctx, person, msg.channel)]


RENEW_WORDS = ("przedłuż", "przedluz", "renew")
LIST_WORDS = ("wypożyczenia", "wypozyczenia", "loans")


async def handle_email(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    """biblioteka@: the subject or the first line says what the reader wants."""
    first_line = next((line for line in msg.text.splitlines() if line.strip()), "")
    words = f"{msg.subject or ''} {first_line}".lower()
    if catalogue.wanted(msg) is not None:
        return await catalogue.handle_email(ctx, msg, person)
    if any(w in words for w in RENEW_WORDS):
        if person is not None:
            require_proof(msg)  # renewing changes the reader's loans: only a proven sender
        return [await renew_all(ctx, person, "email")]
    lists = await reading_lists.handle_email(ctx, msg, person)  # listy, zapisz, wypisz
    if lists is not None:
        return lists
    if any(w in words for w in LIST_WORDS):
        return [await list_loans(ctx, person)]
    return [Reply("library_help", {})]


async def renewals_since(since: datetime, limit: int = 1000) -> list[dict[str, Any]]:
    rows = await Renewal.filter(created_at__gt=since).order_by("created_at", "id").limit(limit)
    return [{"id": r.id, "loan": r.loan_id, "card": r.card, "old_due": r.old_due.isoformat(),
             "new_due": r.new_due.isoformat(), "channel": r.channel,
             "at": r.created_at.isoformat()} for r in rows]


# --- overdue reminders --------------------------------------------------------------------


def level_for(due: date, today: date) -> str | None:
    """The one reminder level that applies today (the highest reached)."""
    days_over = (today - due).days
    for level, first_day in LEVELS:
        if first_day < 0:
            if first_day <= days_over < 0:
                return level
        elif days_over >= first_day:
            return level
    return None


async def overdue_run(ctx: ServiceContext) -> dict[str, Any]:
    """Queue each reader's due reminders (one message per reader and level), record them,
    and send librarians a summary. Safe to run any number of times."""
    now = ctx.clock.now()
    today = now.astimezone(ctx.zone).date()
    horizon = today + timedelta(days=2)
    loans = await Loan.filter(returned=False, due__lte=horizon)
    candidates = [(loan, level) for loan in loans if (level := level_for(loan.due, today))]
    done = set(await read_in([loan.id for loan, _ in candidates], lambda part: (
        LoanReminder.filter(loan_id__in=part).values_list("loan_id", "level"))))
    due_now = [(loan, level) for loan, level in candidates
               if (loan.id, f"{level}@{loan.due.isoformat()}") not in done]
    cards = {loan.card for loan, _ in due_now}
    readers = {p.library_card: p for p in await read_in(
        cards, lambda part: Person.filter(library_card__in=part))}
    reachable = {r.person.id: r for r in await fanout.recipients_of(ctx, readers.values())
                 if r.person is not None}  # (always: recipients_of is given people)

    groups: dict[tuple[str, str], list[Loan]] = defaultdict(list)
    for loan, level in due_now:
        groups[(loan.card, level)].append(loan)
    planned = fanout.Plan()
    reminders: list[LoanReminder] = []
    unreachable: list[dict[str, Any]] = []
    by_level: dict[str, int] = defaultdict(int)
    for (card, level), items in groups.items():
        reader = readers.get(card)
        ids = ",".join(sorted(f"{x.id}@{x.due.isoformat()}" for x in items))
        notice = fanout.Notice(
            kind="library", template="library_reminder", mailbox="biblioteka",
            key=f"loan-reminder:{card}:{level}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}",
            context={"level": level, "loans": [{"title": x.title, "due": x.due,
                                                "days": (today - x.due).days} for x in items]},
            cause="loan-reminder")
        one = fanout.plan(ctx, [reachable[reader.id]], notice, now) if reader else fanout.Plan()
        planned.extend(one)
        told = bool(one.deliveries)
        if told:
            by_level[level] += 1
        else:
            unreachable.append({"card": card, "name": reader.name if reader else None,
                                "level": level, "titles": [x.title for x in items]})
        reminders.extend(LoanReminder(loan_id=x.id, level=f"{level}@{x.due.isoformat()}",
                                      card=card, reachable=told, created_at=now)
                         for x in items)
    async with in_transaction():
        await LoanReminder.bulk_create(reminders, batch_size=1000, ignore_conflicts=True)
        await fanout.write(planned, now)
        summary: dict[str, Any] = {"date": today.isoformat(), "messages": len(planned.deliveries),
                   "loans": len(reminders), "by_level": dict(by_level),
                   "unreachable": unreachable,
                   "failed_yesterday": await _failed_since(now - timedelta(days=1))}
        librarians = [p for p in await Person.all() if "librarian" in (p.roles or [])]
        # the librarians' message counts; who and what stays in the job's summary, shown
        # in the console (/panel/biblioteka), so that one erasure finds it (issue #18)
        await fanout.fan_out(ctx, librarians, fanout.Notice(
            kind="library", template="library_summary", mailbox="biblioteka",
            key=f"library-summary:{today.isoformat()}", context={
                "date": summary["date"], "messages": summary["messages"],
                "loans": summary["loans"], "by_level": summary["by_level"],
                "unreachable_count": len(unreachable),
                "failed_count": len(summary["failed_yesterday"])}), now)
    summary["unreachable_readers"] = len({u["card"] for u in unreachable})
    return summary


async def _failed_since(since: datetime) -> list[dict[str, Any]]:
    rows = await Outbox.filter(cause="loan-reminder", status="failed", created_at__gte=since
                               ).values("recipient", "channel", "last_error")
    return [{"recipient": r["recipient"], "channel": r["channel"], "error": r["last_error"][:200]}
            for r in rows]
