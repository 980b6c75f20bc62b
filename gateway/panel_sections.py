"""The console's other sections (issue #13): announcements, the library, people (with
link-code letters and RODO requests) and the service's health. Sign-in, sessions, the
case pages and the audit trail are in gateway/panel.py, whose helpers these use.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import datetime, timedelta
from typing import Any

import qrcode
import qrcode.image.svg
from aiohttp import web
from markupsafe import Markup, escape
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from gateway.client import client_address
from gateway.downloads import file_response
from gateway.jobs import jobs
from gateway.keys import DISPATCHER, HEALTH, METRICS, PUBLISHER, SETTINGS
from gateway.panel import (
    STAFF,
    Refusal,
    _actor,
    _form,
    _lang,
    _need,
    _now,
    _page,
    _services,
    row_id,
)
from handlers import accounts, announcements, audit, health, preferences, quota, rodo, unread
from handlers.fanout import modes_of
from handlers.i18n import LANGUAGES
from handlers.limits import fit, fit_text
from handlers.message import InvalidInput
from store.models import (
    ROLES,
    Announcement,
    Identity,
    JobRun,
    Outbox,
    Person,
    Renewal,
)
from store.outbox import pending_stats

routes = web.RouteTableDef()  # relative to the console's prefix, /panel (gateway/console.py)


# --- announcements -----------------------------------------------------------------------------


def _units_known(people: list[Person]) -> list[str]:
    return sorted({u for p in people for u in (p.units or [])})


def _audience_of(form: dict[str, Any]) -> dict[str, list[str]]:
    units = [str(v)[:64] for k, v in form.items() if k.startswith("unit:")][:50]
    roles = [r for r in ROLES if f"role:{r}" in form]
    return {k: v for k, v in (("units", units), ("roles", roles)) if v}


def _visible(person: Person, found: Announcement) -> bool:
    """Staff see announcements of their own units (as in the bot) and their own."""
    if "admin" in (person.roles or []) or found.author_id == person.id:
        return True
    units = found.audience.get("units") or []
    return bool(units) and set(units) <= set(person.units or [])


async def _draft(request: web.Request) -> tuple[dict[str, Any], list[str]]:
    """The compose form read and checked; returns (draft, problems)."""
    me = _need(request, "announcements")
    form = await _form(request)
    problems = []
    draft: dict[str, Any] = {
        "title": str(form.get("tytul", "")).strip(), "body": str(form.get("tresc", "")).strip(),
        "audience": _audience_of(form), "urgent": "pilne" in form,
        "publish_at": str(form.get("kiedy", "")).strip()[:16]}
    try:
        fit(Announcement, "title", draft["title"], "title")
        fit_text(draft["body"], "body")
    except InvalidInput:
        problems.append("too_long")
    if not draft["title"] or not draft["body"]:
        problems.append("empty")
    why = announcements.check_audience(me, draft["audience"])
    if why:
        problems.append(why)
    if draft["publish_at"]:
        try:
            local = datetime.fromisoformat(draft["publish_at"])
            draft["when"] = local.replace(tzinfo=_services(request).zone)
        except ValueError:
            problems.append("bad_time")
    return draft, problems


@routes.get("/ogloszenia")
async def announcement_list(request: web.Request) -> web.Response:
    me = _need(request, "announcements")
    recent = [a for a in await Announcement.all().order_by("-id").limit(200) if _visible(me, a)]
    people = await Person.all().only("id", "units")
    units = _units_known(people) if "admin" in (me.roles or []) else sorted(me.units or [])
    return _page(request, "announcements", items=recent[:50], units=units, roles=ROLES,
                 draft={"audience": {}})


@routes.post("/ogloszenia/podglad")
async def announcement_preview(request: web.Request) -> web.Response:
    """How many people it will reach, and how it reads in Telegram and in mail, before
    anything is sent."""
    me = request[STAFF][1]
    draft, problems = await _draft(request)
    people = await Person.all().only("id", "units")
    units = _units_known(people) if "admin" in (me.roles or []) else sorted(me.units or [])
    if problems:
        return _page(request, "announcements", status=400, items=[], units=units, roles=ROLES,
                     draft=draft, problems=problems)
    audience = await announcements.recipients(draft["audience"])
    sample = Announcement(id=0, title=draft["title"], body=draft["body"],
                          priority="urgent" if draft["urgent"] else "normal")
    renderer, lang = _services(request).renderer, me.language
    context = {"announcement": sample}
    sample_link = f"{_services(request).base_url}/ack/…"
    telegram = telegram_preview(renderer.telegram("announcement", lang, context)["text"])
    email = renderer.email("announcement", lang, context)
    costs = {}
    estimated = [channel for channel in _services(request).channels if channel.estimate]
    if estimated:  # a paid channel's cost before sending (SMS: parts, złoty, budget left)
        last = await Announcement.all().order_by("-id").first()
        for channel in estimated:
            assert channel.estimate is not None
            costs[channel.name] = await channel.estimate(
                _services(request), audience, sample, urgent=bool(draft["urgent"]), lang=lang,
                next_id=(last.id if last is not None else 0) + 1)
    return _page(request, "announcements", items=[], units=units, roles=ROLES, draft=draft,
                 preview={"reach": len(audience), "telegram": telegram,
                          "subject": email["subject"],
                          "email": email["text"].replace("__ACK__", sample_link),
                          "costs": costs})


#: the tags Telegram's HTML mode shows as formatting (Bot API, "Formatting options")
_TELEGRAM_TAG = re.compile(r"</?(?:b|i|u|s|code|pre)>")
_ANY_TAG = re.compile(r"<[^>]*>")


def telegram_preview(text: str) -> Markup:
    """A Telegram message (Telegram HTML, as the renderer made it) as the reader will see
    it: its formatting tags shown as formatting, other tags left out (a link reads as its
    text), and its text — already escaped for Telegram, `Rada &amp; zebranie` — escaped
    once, not twice (issue #18, fault 11: the preview showed `&amp;amp;`)."""
    shown, start = [], 0
    for tag in _ANY_TAG.finditer(text):
        shown.append(escape(html.unescape(text[start:tag.start()])))
        if _TELEGRAM_TAG.fullmatch(tag.group()):
            shown.append(Markup(tag.group()))
        start = tag.end()
    shown.append(escape(html.unescape(text[start:])))
    return Markup("".join(shown).replace("\n", "<br>"))


@routes.post("/ogloszenia")
async def announcement_send(request: web.Request) -> web.Response:
    draft, problems = await _draft(request)
    if problems:
        raise Refusal(400, "conflict")
    me = request[STAFF][1]
    services = _services(request)
    async with in_transaction():
        created = await announcements.create(
            services, author=me, title=draft["title"], body=draft["body"],
            audience=draft["audience"], priority="urgent" if draft["urgent"] else "normal",
            publish_at=draft.get("when"), source="console", actor=_actor(request))
    request.config_dict[PUBLISHER].set()
    raise web.HTTPSeeOther(f"/panel/ogloszenia/{created.id}")


async def _announcement(request: web.Request) -> Announcement:
    me = _need(request, "announcements")
    found = await Announcement.get_or_none(id=row_id(request)) if row_id(request) else None
    if found is None or not _visible(me, found):
        raise Refusal(404, "not_found")
    return found


@routes.get("/ogloszenia/{id}")
async def announcement_page(request: web.Request) -> web.Response:
    """Counts that count up while it goes out (the page reloads itself every few seconds
    until nothing is waiting — a meta refresh, no script)."""
    found = await _announcement(request)
    stats = await announcements.stats(found, limit=200)
    going = found.status == "scheduled" or stats["queued"] > 0
    return _page(request, "announcement", announcement=found, stats=stats, refresh=going,
                 may_withdraw=announcements.may_withdraw(_actor(request), found))


@routes.post("/ogloszenia/{id}/anuluj")
async def announcement_cancel(request: web.Request) -> web.Response:
    return await _stop(request, "cancel")


@routes.post("/ogloszenia/{id}/wycofaj")
async def announcement_retract(request: web.Request) -> web.Response:
    return await _stop(request, "retract")


async def _stop(request: web.Request, how: str) -> web.Response:
    """Cancel or retract: the use-case decides who may and in which state, and audits."""
    found = await _announcement(request)
    await _form(request)
    services = _services(request)
    try:
        if how == "cancel":
            done: object = await announcements.cancel(services, found.id, _actor(request))
        else:
            done = await announcements.retract(services, found.id, _actor(request))
    except audit.Refused as refused:
        raise Refusal(403 if refused.reason == "forbidden" else 409, refused.reason) from None
    if done is None:  # gone since the page was read
        raise Refusal(404, "not_found")
    request.config_dict[DISPATCHER].notify()
    raise web.HTTPSeeOther(f"/panel/ogloszenia/{found.id}")


# --- library -------------------------------------------------------------------------------------


@routes.get("/biblioteka")
async def library_page(request: web.Request) -> web.Response:
    """The last reminder run, the printable list of readers no channel reaches, and the
    recent renewals."""
    _need(request, "library")
    last = await JobRun.filter(job="overdue-reminders", finished_at__isnull=False).order_by(
        "-finished_at").first()
    renewals = await Renewal.all().order_by("-created_at").limit(50)
    cards = {r.card for r in renewals}
    readers = {p.library_card: p.name for p in await Person.filter(library_card__in=cards)}
    return _page(request, "library", last=last, summary=(last.summary if last else {}),
                 renewals=renewals, readers=readers)


# --- people ---------------------------------------------------------------------------------------


@routes.get("/ludzie")
async def people_page(request: web.Request) -> web.Response:
    _need(request, "people")
    words = request.query.get("szukaj", "").strip()[:100]
    found: list[Person] = []
    if words:
        by_address = await Identity.filter(address__icontains=words.lower()).limit(50
                                                                                  ).values_list(
            "person_id", flat=True)
        found = await Person.filter(id__in=set(by_address)).limit(50) + await Person.filter(
            name__icontains=words).limit(50)
        found = list({p.id: p for p in found}.values())
    return _page(request, "people", people=found, words=words,
                 erased=request.query.get("usunieto") == "1")


async def _person(request: web.Request) -> Person:
    _need(request, "people")
    wanted = row_id(request)
    found = await Person.get_or_none(id=wanted) if wanted else None
    if found is None:
        raise Refusal(404, "not_found")
    return found


@routes.get("/ludzie/{id}")
async def person_page(request: web.Request) -> web.Response:
    person = await _person(request)
    identities = await Identity.filter(person_id=person.id).order_by("channel", "id").values(
        "channel", "address", "failing_since", "failing_reason")
    # each address's health and last delivery, in two queries for all of them
    addresses = await health.of_person(identities, _lang(request))
    return _page(request, "person", person=person, addresses=addresses,
                 modes=modes_of(person), languages=LANGUAGES)


@routes.post("/ludzie/{id}/ustawienia")
async def person_preferences(request: web.Request) -> web.Response:
    """The person's first channel (any registered one; the others follow in the
    registry's order, or none: back to the channel they last used) and "bez polskich
    znaków", through the one rule of preferences (handlers/preferences.py), audited as the
    API's PATCH is."""
    person = await _person(request)
    form = await _form(request)
    names = _services(request).channels.names
    chosen = str(form.get("kanal", ""))
    values: dict[str, Any] = {"plain_letters": form.get("bez_polskich") == "1"}
    if chosen:
        values["channel_order"] = accounts.channel_first(chosen, names)
    try:
        changes = preferences.parse_preferences(values, person, names)
    except InvalidInput:
        raise Refusal(400, "conflict") from None  # a channel no longer registered
    if not chosen:
        changes["channel_order"] = []
    changes = {k: v for k, v in changes.items() if getattr(person, k) != v}
    async with in_transaction():
        await preferences.set_preferences(person, changes)
        if changes:
            await audit.record(_actor(request), "person.preferences", f"person:{person.id}",
                               _now(request), fields=sorted(changes))
    raise web.HTTPSeeOther(f"/panel/ludzie/{person.id}")


def qr_svg(text: str) -> Markup:
    """A QR code as inline SVG (the `qrcode` library; a path, no external image)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10)
    buffer = io.BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration: it is inline HTML
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR" ', 1))


@routes.post("/ludzie/{id}/kod")
async def person_link_letter(request: web.Request) -> web.Response:
    """A fresh link code as a QR code and a one-page letter to print (a parents' evening).
    Shown once, in the answer to the POST; the code is kept only as the link."""
    person = await _person(request)
    await _form(request)
    services = _services(request)
    async with in_transaction():
        entry = await accounts.create_link_code(person, _now(request), services.link_code_ttl)
        await audit.record(_actor(request), "person.link_code", f"person:{person.id}",
                           _now(request))
    bot = services.bot_username
    link = f"https://t.me/{bot}?start={entry.code}" if bot else f"/start {entry.code}"
    return _page(request, "letter", person=person, code=entry.code, link=link,
                 qr=qr_svg(link), expires=entry.expires_at,
                 parent="parent" in (person.roles or []))


@routes.post("/ludzie/{id}/eksport")
async def person_export(request: web.Request) -> web.Response:
    person = await _person(request)
    await _form(request)
    async with in_transaction():
        found = await rodo.export(person.id, channels=_services(request).channels)
        assert found is not None
        found["exported_at"] = _now(request).isoformat()
        await audit.record(_actor(request), "person.export", f"person:{person.id}",
                           _now(request))
    body = json.dumps(found, ensure_ascii=False, indent=2, default=str)
    return file_response(body, f"rodo-osoba-{person.id}.json", content_type="application/json")


@routes.post("/ludzie/{id}/usun")
async def person_erase(request: web.Request) -> web.Response:
    """Erasure asks for the person's number typed again (a confirmation, not a click)."""
    person = await _person(request)
    form = await _form(request)
    if str(form.get("potwierdzenie", "")).strip() != str(person.id):
        raise Refusal(400, "confirm")
    if person.id == request[STAFF][1].id:
        raise Refusal(409, "conflict")
    await rodo.erase(person.id, _actor(request), _now(request),
                     channels=_services(request).channels,
                     spool_dir=request.config_dict[SETTINGS].sent_mail_dir)
    request.config_dict[DISPATCHER].notify()
    raise web.HTTPSeeOther("/panel/ludzie?usunieto=1")


# --- health --------------------------------------------------------------------------------------


@routes.get("/zdrowie")
async def health_page(request: web.Request) -> web.Response:
    """At a glance: what waits to leave and since when, what failed, Telegram's 429s,
    the last run of each job, the room left for attachments, and the background parts
    of this process."""
    _need(request, "health")
    now = _now(request)
    waiting = await pending_stats()
    failures = dict(await Outbox.filter(status="failed", created_at__gte=now - timedelta(days=1))
                    .annotate(n=Count("id")).group_by("channel").values_list("channel", "n"))
    registry = request.config_dict[METRICS].registry
    runs = []
    for spec in jobs():
        last = await JobRun.filter(job=spec.name).order_by("-started_at").first()
        runs.append({"name": spec.name, "last": last})
    # every registered channel (at 0 too), then any a row still names
    channels = list(dict.fromkeys([*_services(request).channels.names, *sorted(waiting),
                                   *sorted(failures)]))
    throttled = {c: int(registry.get_sample_value("emil_telegram_429_total", {"channel": c}) or 0)
                 for c in channels}
    return _page(request, "health", channels=channels, waiting=waiting, failures=failures,
                 throttled=throttled, runs=runs, now=now, unread=await unread.count_waiting(),
                 unread_alert=request.config_dict[SETTINGS].unread_mail_alert,
                 storage=await quota.store_state(_services(request)),
                 parts=sorted(request.config_dict[HEALTH].parts.items()),
                 instance=request.config_dict[SETTINGS].instance_name, peer=client_address(request))
