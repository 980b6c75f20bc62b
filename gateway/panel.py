"""The staff console, `/panel/` (issue #13): pages for the people who run the service.

Server-rendered with Jinja2, no script at all (the CSP of every page forbids it), one
stylesheet served from here. This module reads HTTP (cookies, forms, query strings) and
calls `handlers/` for every rule: who may sign in and see what (handlers/staff.py), what
a reply or a status change does (handlers/cases.py), the audit trail (handlers/audit.py).

Every form carries the session's CSRF token (the sign-in form one tied to the browser
cookie); every POST answers with 303 to a page (POST → redirect → GET). Refusals are
pages in the reader's language. Polish by default, English with `?lang=en` (kept in a
cookie).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.typedefs import Handler
from tortoise.transactions import in_transaction

from gateway.api import PAGE_HEADERS
from gateway.client import client_address, limit_key
from gateway.downloads import file_response
from gateway.keys import DISPATCHER, SERVICES, SETTINGS, SIGN_IN, STORE
from gateway.validate import MalformedForm, read_form
from handlers import audit, cases, i18n, staff
from handlers.addresses import normalise_email
from handlers.context import ServiceContext
from handlers.signature_check import signatures_by_file
from handlers.text import whole_number
from store import search
from store.models import (
    CASE_STATUSES,
    Attachment,
    Case,
    CaseContact,
    CaseEvent,
    DocumentSignature,
    Person,
)

#: the console's own pages, relative to its prefix `/panel` (gateway/console.py)
routes = web.RouteTableDef()
#: the signed-in session and its person (set by the `console` middleware)
STAFF = web.RequestKey("staff", tuple)

SESSION_COOKIE = "panel-sesja"
BROWSER_COOKIE = "panel-przegladarka"
LANG_COOKIE = "panel-jezyk"
PAGE_SIZE = 50
#: a search looks among this many of the newest matching cases (then the filters apply)
SEARCH_LIMIT = 200
TEXT_MAX = 20_000
STATIC = Path(__file__).resolve().parent.parent / "templates" / "static"
#: where a case may come from besides the registered channels (handlers/channels.py): the
#: API and the case page, which are no channel a message goes back by
CASE_SOURCES = ("api", "web")


class Refusal(Exception):
    """A console page that cannot be shown: `notice` names the explanation."""

    def __init__(self, status: int, notice: str) -> None:
        super().__init__(notice)
        self.status, self.notice = status, notice


# --- small helpers ------------------------------------------------------------------------


def _services(request: web.Request) -> ServiceContext:
    return request.config_dict[SERVICES]


def _now(request: web.Request) -> datetime:
    return _services(request).clock.now()


def _secure(request: web.Request) -> bool:
    return request.config_dict[SETTINGS].base_url.startswith("https://")


def case_channels(request: web.Request) -> tuple[str, ...]:
    """What the case queue can be filtered by: every registered channel, in the registry's
    order, then the sources that are no channel."""
    return (*_services(request).channels.names, *CASE_SOURCES)


def _lang(request: web.Request) -> str:
    return i18n.language(request.query.get("lang") or request.cookies.get(LANG_COOKIE) or "pl")


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int | None = None) -> None:
    response.set_cookie(name, value, path="/panel", httponly=True, samesite="Lax",
                        secure=_secure(request), max_age=max_age)


def _page(request: web.Request, name: str, status: int = 200, **context: Any) -> web.Response:
    lang = _lang(request)
    signed = request.get(STAFF)
    cases_unit = request.config_dict[SETTINGS].cases_unit
    text = _services(request).renderer.page(f"panel/{name}.html", lang, {
        "pl": lang == "pl", "me": signed[1] if signed else None,
        "csrf": signed[0].csrf if signed else context.pop("csrf", ""),
        "sections": staff.sections(signed[1], cases_unit) if signed else [],
        "path": request.path, "statuses": CASE_STATUSES,
        # the registered channels, for every page that offers them (a person's order)
        "channel_names": _services(request).channels.names, **context})
    response = web.Response(status=status, text=text, content_type="text/html",
                            charset="utf-8", headers=PAGE_HEADERS)
    if request.query.get("lang") in i18n.LANGUAGES:
        _set_cookie(request, response, LANG_COOKIE, lang, max_age=365 * 86400)
    return response


def _browser_csrf(request: web.Request, browser: str) -> str:
    key = _services(request).signing_secret.encode()
    return hmac.new(key, f"panel-sign-in:{browser}".encode(), hashlib.sha256).hexdigest()[:32]


async def _form(request: web.Request) -> dict[str, Any]:
    """The posted form, after its CSRF token is checked against the session."""
    form = await read_form(request)
    session, _ = request[STAFF]
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise Refusal(403, "expired")
    return dict(form)


def _actor(request: web.Request) -> audit.Actor:
    return audit.Actor.of(request[STAFF][1], "console", client_address(request))


@web.middleware
async def console(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's own middleware: a live session is required (but on the sign-in
    pages); refusals are pages. The session and its person are `request[STAFF]`."""
    try:
        if not request.path.startswith("/panel/wejscie"):
            idle = timedelta(minutes=request.config_dict[SETTINGS].panel_idle_minutes)
            signed = await staff.session_of(request.cookies.get(SESSION_COOKIE, ""),
                                            _now(request), idle)
            if signed is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther("/panel/wejscie?" + urlencode({"dalej": request.path_qs}))
                raise Refusal(401, "signed_out")
            request[STAFF] = signed
        return await handler(request)
    except Refusal as refusal:
        return _page(request, "refusal", status=refusal.status, notice=refusal.notice)
    except MalformedForm:
        return _page(request, "refusal", status=400, notice="expired")


def row_id(request: web.Request) -> int | None:
    """The `{id}` of the path as a row id, or None (words, numbers past a database
    integer): every console `{id}` is read here."""
    return whole_number(request.match_info["id"], low=1)


def _need(request: web.Request, section: str) -> Person:
    person = request[STAFF][1]
    if section not in staff.sections(person, request.config_dict[SETTINGS].cases_unit):
        raise Refusal(403, "forbidden")
    return person


# --- signing in and out ----------------------------------------------------------------------


@routes.get("")
@routes.get("/")
async def home(request: web.Request) -> web.Response:
    shown = staff.sections(request[STAFF][1], request.config_dict[SETTINGS].cases_unit)
    first = {"cases": "/panel/sprawy", "announcements": "/panel/ogloszenia",
             "library": "/panel/biblioteka", "figures": "/panel/szkoly",
             "people": "/panel/ludzie"}
    for section in shown:
        if section in first:
            raise web.HTTPSeeOther(first[section])
    return _page(request, "home")


def _next(value: str) -> str:
    """Only a console path of this site is a place to go back to: no open redirect, no
    backslash (browsers read it as a slash), nothing but visible ASCII (a CR or LF would
    break the `Location` header), and no longer than the stored column."""
    local = (value.startswith("/panel/") and len(value) <= 500 and "\\" not in value
             and all("!" <= ch <= "~" for ch in value))
    return value if local else "/panel/"


@routes.get("/wejscie")
async def sign_in_form(request: web.Request) -> web.Response:
    browser = request.cookies.get(BROWSER_COOKIE) or staff.new_token()
    response = _page(request, "sign_in", csrf=_browser_csrf(request, browser),
                     dalej=_next(request.query.get("dalej", "")))
    _set_cookie(request, response, BROWSER_COOKIE, browser, max_age=3600)
    return response


async def _browser_form(request: web.Request, refusal: str) -> tuple[str, dict[str, Any]]:
    """The browser cookie and the posted sign-in form, its token checked against it."""
    browser = request.cookies.get(BROWSER_COOKIE, "")
    form = await read_form(request)
    if not browser or not hmac.compare_digest(str(form.get("csrf", "")),
                                              _browser_csrf(request, browser)):
        raise Refusal(403, refusal)
    return browser, form


@routes.post("/wejscie")
async def sign_in_request(request: web.Request) -> web.Response:
    """One answer for every address: the form is stored and answered, and the sign-in
    worker decides afterwards whether a link goes out (handlers/staff.py). Limited per
    client only: a limit per address would let a stranger spend it for the staff member."""
    browser, form = await _browser_form(request, "expired")
    dalej = _next(str(form.get("dalej", "")))
    email = normalise_email(str(form.get("email", ""))[:320])
    if email is None:
        return _page(request, "sign_in", status=400, csrf=_browser_csrf(request, browser),
                     invalid=True, dalej=dalej)
    limits = _services(request).limits
    if limits and limits.sign_in_per_client.take(limit_key(client_address(request))):
        raise Refusal(429, "too_many")
    await staff.ask_for_link(email, browser, dalej, _now(request))
    request.config_dict[SIGN_IN].notify()
    return _page(request, "sign_in", sent=True, minutes=staff.LINK_MINUTES,
                 pause=int(staff.MAIL_EVERY.total_seconds()) // 60)


@routes.get("/wejscie/{token}")
async def sign_in_link(request: web.Request) -> web.Response:
    """The link from the mail shows a button: mail scanners open links on delivery and
    must not spend them."""
    browser = request.cookies.get(BROWSER_COOKIE, "")
    return _page(request, "sign_in", confirm=True, token=request.match_info["token"][:100],
                 csrf=_browser_csrf(request, browser) if browser else "")


@routes.post("/wejscie/{token}")
async def sign_in_confirm(request: web.Request) -> web.Response:
    """Signs in and goes back to the page the person was headed for when the console
    sent them to sign in (`dalej`, kept with their browser's request)."""
    browser, _ = await _browser_form(request, "other_browser")
    now = _now(request)
    async with in_transaction():
        redeemed = await staff.redeem(request.match_info["token"][:100], browser, now)
        person = redeemed.person
        if person is None:
            raise Refusal(403, redeemed.refusal)
        token, _ = await staff.start_session(person, now)
        await audit.record(audit.Actor.of(person, "console", client_address(request)),
                           "console.sign_in", f"person:{person.id}", now)
    response = web.HTTPSeeOther(_next(redeemed.dalej))
    _set_cookie(request, response, SESSION_COOKIE, token)
    response.del_cookie(BROWSER_COOKIE, path="/panel")
    raise response


@routes.post("/wyloguj")
async def sign_out(request: web.Request) -> web.Response:
    await _form(request)
    await staff.end(request[STAFF][0], _now(request))
    response = web.HTTPSeeOther("/panel/wejscie?wylogowano=1")
    response.del_cookie(SESSION_COOKIE, path="/panel")
    raise response


@routes.post("/wyloguj-wszedzie")
async def sign_out_everywhere(request: web.Request) -> web.Response:
    await _form(request)
    person = request[STAFF][1]
    async with in_transaction():
        ended = await staff.end_everywhere(person.id, _now(request))
        await audit.record(_actor(request), "console.sign_out_everywhere", f"person:{person.id}",
                           _now(request), sessions=ended)
    response = web.HTTPSeeOther("/panel/wejscie?wylogowano=1")
    response.del_cookie(SESSION_COOKIE, path="/panel")
    raise response


# --- cases -------------------------------------------------------------------------------------


async def _clerks(cases_unit: str) -> list[Person]:
    """Who a case can be assigned to (roles live in a JSON list, so they are read here)."""
    people = await Person.all().only("id", "name", "roles", "units").order_by("name")
    return [p for p in people if cases.may_handle_cases(p, cases_unit)]


@routes.get("/sprawy")
async def case_queue(request: web.Request) -> web.Response:
    """The queue, newest activity first, filtered by status, channel, age and assignee,
    and by a full-text search over the whole correspondence."""
    me = _need(request, "cases")
    q = request.query
    query = Case.all()
    status = q.get("status", "")
    if status in CASE_STATUSES:
        query = query.filter(status=status)
    elif status == "open":
        query = query.filter(status__in=("received", "in_progress", "waiting"))
    channel, channels = q.get("kanal", ""), case_channels(request)
    if channel in channels:
        query = query.filter(origin_channel=channel)
    age = whole_number(q.get("wiek"), low=1, high=3650)
    if age is not None:
        query = query.filter(created_at__lte=_now(request) - timedelta(days=age))
    assignee = q.get("przydzial", "")
    if assignee == "moje":
        query = query.filter(assignee_id=me.id)
    elif assignee == "nieprzydzielone":
        query = query.filter(assignee_id__isnull=True)
    words = q.get("szukaj", "").strip()[:200]
    if words:
        query = query.filter(number__in=await search.matching(
            words, limit=SEARCH_LIMIT, db=request.config_dict[STORE].reader()))
    page = whole_number(q.get("strona"), high=9_999) or 0
    found = await query.order_by("-updated_at").offset(page * PAGE_SIZE).limit(PAGE_SIZE + 1)
    clerks = {p.id: p for p in await Person.filter(
        id__in={c.assignee_id for c in found if c.assignee_id}).only("id", "name")}
    # the cases that carry a valid qualified signature get a badge (issue #20)
    qualified = set(await DocumentSignature.filter(
        case_id__in=[c.number for c in found], status="valid", qualified=True
    ).values_list("case_id", flat=True)) if found else set()
    filters = {k: v for k, v in q.items() if k != "strona" and k != "lang"}
    return _page(request, "cases", cases=found[:PAGE_SIZE], more=len(found) > PAGE_SIZE,
                 page=page, filters=filters, words=words, clerks=clerks, channels=channels,
                 qualified=qualified,
                 search_limit=SEARCH_LIMIT,
                 query_of=lambda **changes: urlencode({**filters, **changes}))


async def _case(request: web.Request) -> Case:
    _need(request, "cases")
    number = cases.find_number(request.match_info["number"][:32])
    case = await Case.get_or_none(number=number) if number else None
    if case is None:
        raise Refusal(404, "no_case")
    return case


@routes.get("/sprawy/{number}")
async def case_page(request: web.Request) -> web.Response:
    case = await _case(request)
    events = await CaseEvent.filter(case_id=case.number).order_by("created_at", "id")
    files = await Attachment.filter(case_id=case.number).order_by("id").values(
        "id", "filename", "content_type", "size", "created_at")
    clerks = await _clerks(request.config_dict[SETTINGS].cases_unit)
    authors = {p.id: p.name for p in await Person.filter(
        id__in={e.author_id for e in events if e.author_id})}
    requester = await Person.get_or_none(id=case.person_id) if case.person_id else None
    contacts = await CaseContact.filter(case_id=case.number).order_by("id")
    signed = await signatures_by_file(case.number)
    return _page(request, "case", case=case, events=events, files=files, clerks=clerks,
                 authors=authors, requester=requester, contacts=contacts, signed=signed,
                 qualified=any(s.status == "valid" and s.qualified
                               for found in signed.values() for s in found),
                 done=request.query.get("zrobione", ""))


@routes.get("/sprawy/{number}/zalaczniki/{id}")
async def case_file(request: web.Request) -> web.StreamResponse:
    case = await _case(request)
    file_id = row_id(request)
    found = await Attachment.get_or_none(id=file_id, case_id=case.number) if file_id else None
    if found is None:
        raise Refusal(404, "no_file")
    return file_response(found.data, found.filename)


async def _case_action(request: web.Request, action: str) -> web.Response:
    """The case page's forms. The rules and the transaction (the case row locked, the
    event, the search index, the audit entry and the notice together) are
    handlers/cases.py's; here the form is read and checked."""
    case = await _case(request)
    form = await _form(request)
    services = _services(request)
    me = request[STAFF][1]
    text = str(form.get("tekst", "")).strip()[:TEXT_MAX]
    done: Case | tuple[Case, CaseEvent] | None
    if action == "assign":
        chosen = str(form.get("osoba", ""))
        clerks = {str(p.id): p for p in await _clerks(request.config_dict[SETTINGS].cases_unit)}
        if chosen and chosen not in clerks:
            raise Refusal(400, "bad_assignee")
        try:
            done = await cases.assign(services, case.number, clerks.get(chosen),
                                      _actor(request))
        except audit.Refused:
            raise Refusal(403, "forbidden") from None
    else:
        status = str(form.get("status", "")) if action == "status" else None
        if status is not None and status not in CASE_STATUSES:
            raise Refusal(400, "bad_status")
        if status is None and not text:
            raise Refusal(400, "empty")
        try:
            done = await cases.staff_event(services, case.number, _actor(request),
                                           status=status, note=text or None,
                                           public=action != "note", author=me,
                                           channel="console")
        except audit.Refused:
            raise Refusal(403, "forbidden") from None
    if done is None:  # no such case (`_case` found it a moment ago: a race, not a rule)
        raise Refusal(404, "no_case")
    request.config_dict[DISPATCHER].notify()
    raise web.HTTPSeeOther(f"/panel/sprawy/{case.number}?zrobione={action}")


#: the case page's forms: path → action (the audit trail's `case.<action>`)
CASE_ACTIONS = {"odpowiedz": "reply", "notatka": "note", "status": "status",
                "przydziel": "assign"}


def _case_form(action: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return await _case_action(request, action)
    return handle


for _path, _action in CASE_ACTIONS.items():
    routes.post(f"/sprawy/{{number}}/{_path}")(_case_form(_action))


# --- audit -------------------------------------------------------------------------------------


@routes.get("/audyt")
async def audit_page(request: web.Request) -> web.Response:
    _need(request, "audit")
    q = request.query
    found = await audit.entries(actor=q.get("kto", ""), action=q.get("akcja", ""),
                                obj=q.get("obiekt", ""), source=q.get("zrodlo", ""))
    return _page(request, "audit", entries=found, filters=dict(q), sources=audit.SOURCES)


# --- the stylesheet ------------------------------------------------------------------------------


async def stylesheet(request: web.Request) -> web.Response:
    """`/static/panel.css`, outside the console's prefix (gateway/console.py routes it)."""
    return web.Response(body=(STATIC / "panel.css").read_bytes(), content_type="text/css",
                        charset="utf-8", headers={"Cache-Control": "max-age=3600",
                                                  "X-Content-Type-Options": "nosniff"})
