"""The console's people: who may sign in and see what, sign-in links and sessions.

Sign-in has no password. Someone gives an email; if it is one of ours and its person has
a staff role, a link goes to them on their own channels (mail or the bot, whichever they
have). The link works once, for `LINK_MINUTES`, and only in a browser that asked for a
link for that person in that time (the browser got a random cookie with the form, and
each request keeps its hash). Only hashes of links and sessions are stored, so a copy of
the database signs nobody in.

Nobody else can lock a staff member out or flood their mailbox (issue #18): a stranger's
request sends at most one mail per person per `MAIL_EVERY` and never spends or replaces
a link, and the staff member's own request in their own browser, within that pause, makes
the link already mailed good in that browser too — so a link in the mailbox always works
for its owner. The form is answered before any of this is decided (`ask_for_link` stores
the request; `answer_link_requests` handles it afterwards, in the sign-in worker): the
answer takes the same store work for a staff address as for any other (fault 6).

A session ends after `idle` without a request, on sign-out, and on "sign out everywhere"
(every session of that person).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from handlers import accounts, announcements, cases, fanout
from handlers.context import ServiceContext
from store.errors import is_transient
from store.models import Person, SignInLink, SignInRequest, StaffSession

log = logging.getLogger(__name__)

LINK_MINUTES = 10
#: at most one sign-in mail per person this often while their last link is unused; half
#: of LINK_MINUTES, so the link a request is pointed to still has five minutes to go
MAIL_EVERY = timedelta(minutes=5)
CONSOLE_ROLES = ("staff", "librarian", "admin")
#: a session's last-seen time is written at most this often (not on every page)
TOUCH_EVERY = timedelta(minutes=1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


# --- what each person may see ------------------------------------------------------------


def is_admin(person: Person) -> bool:
    return "admin" in (person.roles or [])


def may_run_library(person: Person) -> bool:
    return is_admin(person) or "librarian" in (person.roles or [])


#: the staff unit of the education office, who see the schools' figures (issue #20)
EDUCATION_UNIT = "oswiata"


def may_see_figures(person: Person) -> bool:
    """The education office's staff and admins: aggregates of every school, never a
    pupil (handlers/figures.py)."""
    roles = person.roles or []
    return "admin" in roles or ("staff" in roles and EDUCATION_UNIT in (person.units or []))


def sections(person: Person, cases_unit: str) -> list[str]:
    """The console's sections this person sees, in menu order."""
    shown = []
    if cases.may_handle_cases(person, cases_unit):
        shown += ["cases", "unread"]  # mail not understood is theirs too (issue #18)
    if announcements.may_announce(person):
        shown.append("announcements")
    if may_run_library(person):
        shown.append("library")
    if may_see_figures(person):
        shown.append("figures")
    if is_admin(person):
        shown += ["people", "audit", "health"]
    return shown


# --- sign-in links ---------------------------------------------------------------------------


async def ask_for_link(email: str, browser: str, dalej: str, now: datetime) -> None:
    """Store a sign-in form for the sign-in worker. The same single INSERT for every
    address, staff or not: what the form answers, and when, tells nobody who is staff."""
    await SignInRequest.create(email=email, browser_hash=digest(browser), dalej=dalej,
                               requested_at=now)


async def answer_link_requests(ctx: ServiceContext, now: datetime, batch: int = 50) -> int:
    """Handle up to `batch` stored sign-in forms, oldest first, in one transaction (rows
    taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances share the work);
    returns how many. If the batch fails, its rows are handled one at a time and a row
    that fails alone is dropped under a logged reference: one form must not stop the
    queue, and its sender can ask again."""
    try:
        return await _answer_batch(ctx, now, batch)
    except Exception as error:
        if is_transient(error):
            raise  # the store is away: the worker's supervisor retries the batch later
        log.warning("a batch of sign-in requests failed; handling them one by one",
                    exc_info=True)
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    ids: list[int] = await SignInRequest.filter(handled_at__isnull=True).order_by("id").limit(  # type: ignore[assignment]
        batch).values_list("id", flat=True)
    for request_id in ids:
        try:
            await _answer_batch(ctx, now, 1, only=request_id)
        except Exception as error:
            if is_transient(error):
                raise
            log.exception("sign-in request dropped (ref: %s)", secrets.token_hex(4))
            await SignInRequest.filter(id=request_id, handled_at__isnull=True).delete()
    return len(ids)


async def _answer_batch(ctx: ServiceContext, now: datetime, batch: int,
                        only: int | None = None) -> int:
    async with in_transaction():
        pending = SignInRequest.filter(handled_at__isnull=True)
        if only is not None:
            pending = pending.filter(id=only)
        rows = await pending.order_by("id").limit(batch).select_for_update(skip_locked=True)
        if rows:
            await _answer(ctx, rows, now)
            # a browser's "I asked" matters only as long as a link lives
            await SignInRequest.filter(
                handled_at__lt=now - timedelta(minutes=LINK_MINUTES)).delete()
    return len(rows)


async def _answer(ctx: ServiceContext, rows: list[SignInRequest], now: datetime) -> None:
    """Requests for anyone but staff are forgotten. A staff member's request is kept
    (without the email) as "this browser asked", and a link is mailed unless one went to
    them in the last `MAIL_EVERY` and is still unused: then this browser may use that
    one, and a stranger asking again and again sends nothing more."""
    people = await accounts.people_by_address("email", {row.email for row in rows})
    staff = {row.email: people[row.email] for row in rows
             if row.email in people and may_sign_in(people[row.email])}
    gone = [row.id for row in rows if row.email not in staff]
    if gone:
        await SignInRequest.filter(id__in=gone).delete()
    if not staff:
        return
    fresh = now + timedelta(minutes=LINK_MINUTES) - MAIL_EVERY  # expires after this: recent
    # tortoise's stubs type values_list(flat=True) as tuples; it returns the values
    recent = set[int](await SignInLink.filter(  # type: ignore[arg-type]
        person_id__in={p.id for p in staff.values()}, used_at__isnull=True,
        expires_at__gt=fresh).values_list("person_id", flat=True))
    for row in rows:
        person = staff.get(row.email)
        if person is None:
            continue
        await SignInRequest.filter(id=row.id).update(email="", person_id=person.id,
                                                     handled_at=now)
        if person.id in recent:
            continue
        recent.add(person.id)
        await _send_link(ctx, person, row.browser_hash, now)


async def _send_link(ctx: ServiceContext, person: Person, browser_hash: str,
                     now: datetime) -> None:
    token = new_token()
    await SignInLink.create(token_hash=digest(token), person_id=person.id,
                            browser_hash=browser_hash,
                            expires_at=now + timedelta(minutes=LINK_MINUTES))
    await fanout.fan_out(ctx, [person], fanout.Notice(
        kind="sign-in", template="staff_sign_in", key=f"sign-in:{digest(token)[:16]}",
        context={"link": f"{ctx.base_url}/panel/wejscie/{token}", "minutes": LINK_MINUTES},
        urgent=True, mailbox="sprawy"), now)


def may_sign_in(person: Person) -> bool:
    return bool(set(person.roles or []) & set(CONSOLE_ROLES))


@dataclass
class Redeemed:
    """What a sign-in link gave: the person, and where they were going; or why not
    (`refusal`: "bad_link" — unknown, spent or expired; "other_browser" — this browser
    did not ask for a link for that person)."""

    person: Person | None = None
    dalej: str = "/panel/"
    refusal: str = ""


async def redeem(token: str, browser: str, now: datetime) -> Redeemed:
    """The person of a valid link opened in a browser that asked for a link for them
    within `LINK_MINUTES` (whoever's request the link was mailed for); the link is spent
    (one UPDATE decides, so two tabs cannot both use it)."""
    link = await SignInLink.get_or_none(token_hash=digest(token))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return Redeemed(refusal="bad_link")
    asked = await SignInRequest.filter(
        person_id=link.person_id, browser_hash=digest(browser),
        handled_at__gt=now - timedelta(minutes=LINK_MINUTES)).order_by("-id").first()
    if asked is None:
        return Redeemed(refusal="other_browser")
    spent = await SignInLink.filter(token_hash=link.token_hash, used_at__isnull=True).update(
        used_at=now)
    person = await Person.get_or_none(id=link.person_id) if spent else None
    if person is None:
        return Redeemed(refusal="bad_link")
    return Redeemed(person=person, dalej=asked.dalej)


# --- sessions ----------------------------------------------------------------------------------


async def start_session(person: Person, now: datetime) -> tuple[str, StaffSession]:
    token = new_token()
    session = await StaffSession.create(token_hash=digest(token), person_id=person.id,
                                        csrf=new_token(), created_at=now, last_seen_at=now)
    return token, session


async def session_of(token: str, now: datetime, idle: timedelta
                     ) -> tuple[StaffSession, Person] | None:
    """The live session of a cookie and its person, or None (unknown, ended, idle too
    long, or the person lost every console role)."""
    if not token:
        return None
    session = await StaffSession.get_or_none(token_hash=digest(token), ended_at__isnull=True)
    if session is None:
        return None
    if now - session.last_seen_at > idle:
        await StaffSession.filter(token_hash=session.token_hash).update(ended_at=now)
        return None
    person = await Person.get_or_none(id=session.person_id)
    if person is None or not may_sign_in(person):
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        await StaffSession.filter(token_hash=session.token_hash).update(last_seen_at=now)
    return session, person


async def end(session: StaffSession, now: datetime) -> None:
    await StaffSession.filter(token_hash=session.token_hash).update(ended_at=now)


async def end_everywhere(person_id: int, now: datetime) -> int:
    return await StaffSession.filter(person_id=person_id, ended_at__isnull=True).update(
        ended_at=now)
