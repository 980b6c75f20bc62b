"""The console's people: who may sign in and see what, sign-in links and sessions.

Sign-in has no password. A staff member gives their email; if it is one of ours and they
have a staff role, a link goes to them on their own channels (mail or the bot, whichever
they have). The link works once, for `LINK_MINUTES`, and only in the browser that asked:
the browser got a random cookie with the form, and the link keeps its hash. Only hashes
of links and sessions are stored, so a copy of the database signs nobody in.

A session ends after `idle` without a request, on sign-out, and on "sign out everywhere"
(every session of that person).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from handlers import accounts, announcements, fanout
from handlers.context import ServiceContext
from store.models import Person, SignInLink, StaffSession

LINK_MINUTES = 10
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


def may_handle_cases(person: Person, cases_unit: str) -> bool:
    """Staff of the unit named by EMIL_CASES_UNIT, and admins."""
    return is_admin(person) or ("staff" in (person.roles or [])
                                and cases_unit in (person.units or []))


def may_run_library(person: Person) -> bool:
    return is_admin(person) or "librarian" in (person.roles or [])


def sections(person: Person, cases_unit: str) -> list[str]:
    """The console's sections this person sees, in menu order."""
    shown = []
    if may_handle_cases(person, cases_unit):
        shown += ["cases", "unread"]  # mail not understood is theirs too (issue #18)
    if announcements.may_announce(person):
        shown.append("announcements")
    if may_run_library(person):
        shown.append("library")
    if is_admin(person):
        shown += ["people", "audit", "health"]
    return shown


# --- sign-in links ---------------------------------------------------------------------------


async def request_link(ctx: ServiceContext, email: str, browser: str, now: datetime) -> bool:
    """Send a sign-in link to the staff member with this address, if there is one.
    Returns whether a link went out; the page says the same either way, so the form
    tells nobody which addresses are staff."""
    person = await accounts.person_by_address("email", email)
    if person is None or not set(person.roles or []) & set(CONSOLE_ROLES):
        return False
    token = new_token()
    await SignInLink.create(token_hash=digest(token), person_id=person.id,
                            browser_hash=digest(browser),
                            expires_at=now + timedelta(minutes=LINK_MINUTES))
    outcome = await fanout.fan_out(ctx, [person], fanout.Notice(
        kind="sign-in", template="staff_sign_in", key=f"sign-in:{digest(token)[:16]}",
        context={"link": f"{ctx.base_url}/panel/wejscie/{token}", "minutes": LINK_MINUTES},
        urgent=True, mailbox="sprawy"), now)
    return outcome.queued > 0


async def redeem(token: str, browser: str, now: datetime) -> Person | None:
    """The person of a valid link opened in the browser that asked for it; the link is
    spent (one UPDATE decides, so two tabs cannot both use it)."""
    link = await SignInLink.get_or_none(token_hash=digest(token))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    if not secrets.compare_digest(link.browser_hash, digest(browser)):
        return None
    spent = await SignInLink.filter(token_hash=link.token_hash, used_at__isnull=True).update(
        used_at=now)
    if not spent:
        return None
    return await Person.get_or_none(id=link.person_id)


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
    if person is None or not set(person.roles or []) & set(CONSOLE_ROLES):
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        await StaffSession.filter(token_hash=session.token_hash).update(last_seen_at=now)
    return session, person


async def end(session: StaffSession, now: datetime) -> None:
    await StaffSession.filter(token_hash=session.token_hash).update(ended_at=now)


async def end_everywhere(person_id: int, now: datetime) -> int:
    return await StaffSession.filter(person_id=person_id, ended_at__isnull=True).update(
        ended_at=now)
