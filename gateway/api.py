"""The HTTP API (`/api/v1/…`), health, metrics and the Telegram webhook."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from aiohttp import web
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bots import webhook
from gateway import auth, schemas
from gateway.client import client_address, limit_key
from gateway.errors import ApiError
from gateway.jobs import run_job
from gateway.keys import (
    CASE_COMMIT,
    CLOCK,
    DISPATCHER,
    HEALTH,
    METRICS,
    PUBLISHER,
    SERVICES,
    SETTINGS,
    STATE,
    STORE,
    UPDATE_COMMIT,
)
from gateway.validate import ANONYMOUS_MAX_BYTES, json_body, json_model
from handlers import (
    accounts,
    announcements,
    audit,
    cases,
    grades,
    library,
    notify,
    people,
    preferences,
    school,
    unsubscribe,
)
from handlers import unread as unread_mail
from handlers.addresses import normalise_email
from handlers.i18n import OPEN311
from handlers.limits import fit
from handlers.message import Attachment as MessageAttachment
from handlers.text import is_mime_type, whole_number
from store.models import (
    Announcement,
    Case,
    IdempotentRequest,
    Person,
    Student,
)

routes = web.RouteTableDef()
log = logging.getLogger(__name__)
B = TypeVar("B", bound=schemas.Body)


def valid_email(value: str, name: str = "email") -> str:
    """Checked in linear time (handlers/addresses.py); one long address froze the loop."""
    address = normalise_email(value)
    if address is None:
        raise ApiError(400, "invalid_field", f"'{name}' is not an email address", field=name)
    return address


async def keyed_body(request: web.Request, model: type[B]) -> B:
    """The JSON body of a request that carries an API key, as its model: large enough
    for an announcement's attachment (base64 is 4/3 of the file), nested at most 32 deep."""
    limit = request.app[SETTINGS].attachment_max_size * 4 // 3 + ANONYMOUS_MAX_BYTES
    return await json_model(request, model, limit)


def answer(body: schemas.Answer, status: int = 200, **kwargs: Any) -> web.Response:
    """An answer built from its model (gateway/schemas.py), which the document describes."""
    return web.json_response(body.dump(), status=status, **kwargs)


async def require(request: web.Request, scope: str) -> None:
    await auth.require(request, scope, request.app[SETTINGS].admin_token)


def api_actor(request: web.Request) -> audit.Actor:
    """The caller in the audit trail — the key's label, from the peer's address — with
    the key's scopes, for the use-cases' permission rules."""
    return audit.Actor(label=request.get(auth.CALLER) or "API", source="api",
                       address=client_address(request),
                       scopes=request.get(auth.CALLER_SCOPES, frozenset()))


async def audited(request: web.Request, action: str, obj: str, **detail: Any) -> None:
    """Append the caller's action to the audit trail."""
    await audit.record(api_actor(request), action, obj, request.app[SERVICES].clock.now(),
                       **detail)


#: how long /healthz waits for the store's `SELECT 1`: a load balancer gives a check about
#: 5 s (HAProxy's `timeout check` falls back to its connect timeout, AWS's target groups
#: 5 s), so the answer must come first — and a store that keeps `SELECT 1` waiting that
#: long is holding up every request too
STORE_PING_SECONDS = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 only when the store answers, the listeners are up and every background part of
    this process runs; otherwise 503 naming what is not (a load balancer and a person
    reading it both learn the truth). The store's check is a `SELECT 1` bounded by
    `STORE_PING_SECONDS`; searches run on a connection of their own (`Store.reader`), so
    a long one does not hold it up. The count of unread mail after it shares the same
    bound: read on the reader (SQLite: a write holding the main connection after the ping
    answered kept the probe waiting, review of #18), and left out if it is late."""
    state = request.app[STATE]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STORE_PING_SECONDS
    store_ok = await request.app[STORE].ping(STORE_PING_SECONDS)
    failing = request.app[HEALTH].failing()
    ok = store_ok and all(state.values()) and not failing
    body: dict[str, Any] = {"status": "ok" if ok else "degraded",
                            **{k: bool(v) for k, v in state.items()}, "store": store_ok}
    if failing:
        body["failing"] = failing
    if store_ok:
        # unread mail piling up is work for people, not a sick process: "warn" with 200
        # (the `warn` of the IETF health-check response draft, draft-inadarei-api-health-
        # check), so a load balancer keeps this instance while monitoring raises an alert
        body["unread_mail"] = unread = await _unread_count(request, deadline - loop.time())
        if unread is not None and unread >= request.app[SETTINGS].unread_mail_alert:
            body["warnings"] = ["unread_mail"]
            if ok:
                body["status"] = "warn"
    return web.json_response(body, status=200 if ok else 503)


async def _unread_count(request: web.Request, seconds: float) -> int | None:
    """How many mails wait for a clerk, or None if the store does not say within
    `seconds` (what is left of /healthz's bound)."""
    try:
        return await asyncio.wait_for(
            unread_mail.count_waiting(request.app[STORE].reader()), max(seconds, 0.05))
    except TimeoutError:
        log.warning("healthz: the unread mail was not counted in time")
        return None


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    data = await request.app[METRICS].render(request.app[CLOCK],
                                             request.app[SERVICES].channels.names)
    return web.Response(body=data, headers={"Content-Type": "text/plain; version=0.0.4"})


# --- cases ----------------------------------------------------------------------------


def _case_json(case: Case, history: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "number": case.number,
        "status": case.status,
        "open311_status": OPEN311.get(case.status, "open"),
        "subject": case.subject,
        "category": case.category,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        **extra,
    }
    if history is not None:
        body["history"] = [
            schemas.HistoryEntry(at=e.created_at.isoformat(), kind=e.kind, status=e.status,
                                 text=e.text)
            for e in history
        ]
    return body


async def apply_new_cases(app: web.Application, drafts: list[dict[str, Any]]) -> list[dict]:
    """Group-commit body: many API submissions in one transaction (see store.batcher).

    A draft's `reveal_code` says whether its answer carries the access code: for a
    caller with scope `cases` (the town's own form backend) and for an anonymous case
    without an email (the code is its only key); an anonymous case naming an email gets
    its code only by mail to that address, so naming a resident's address reveals
    nothing of their case. An `idempotency_key` stores the answer with the case."""
    services = app[SERVICES]
    new = await cases.drafts_by_address([
        cases.NewCase(subject=d["subject"], body=d["body"], category=d.get("category"),
                      channel="api", contacts=(("email", d["email"]),) if d.get("email") else ())
        for d in drafts])
    created = await cases.create_cases(services, new, confirm=True)
    now = services.clock.now()
    await notify.queue([d for _, _, d in created if d is not None], now)
    answers = []
    for draft, (case, code, _) in zip(drafts, created, strict=True):
        made = schemas.CaseCreated(number=case.number, status=case.status,
                                   **({"access_code": code} if draft.get("reveal_code") else {}))
        answers.append(made.dump())
    keyed = [IdempotentRequest(key=d["idempotency_key"], response=a, created_at=now)
             for d, a in zip(drafts, answers, strict=True) if d.get("idempotency_key")]
    if keyed:  # a key used twice at once: IntegrityError, and the second caller gets the first's
        await IdempotentRequest.bulk_create(keyed)
    return answers


def _too_many(wait: float, what: str) -> ApiError:
    seconds = str(max(1, int(wait)))
    return ApiError(429, "rate_limited", f"too many {what}; try again in {seconds} s",
                    headers={"Retry-After": seconds})


IDEMPOTENCY_WINDOW = timedelta(hours=24)


@routes.post("/api/v1/cases")
async def create_case(request: web.Request) -> web.Response:
    scopes = await auth.scopes_of(auth.bearer(request), request.app[SETTINGS].admin_token)
    keyed = "cases" in scopes
    body = await (keyed_body(request, schemas.NewCase) if keyed
                  else json_model(request, schemas.NewCase))
    draft: dict[str, Any] = {"subject": body.subject, "body": body.body,
                             "category": body.category}
    draft["email"] = valid_email(body.email) if body.email else None
    draft["reveal_code"] = keyed or not draft["email"]
    services = request.app[SERVICES]
    replay = await _idempotent(request, draft, "keyed" if keyed else client_address(request))
    if replay is not None:
        return replay
    if not keyed:
        limits = services.limits
        wait = limits.cases_per_client.take(limit_key(client_address(request)))
        if not wait and draft["email"]:  # our confirmation goes there: no mail bomb
            wait = limits.cases_per_recipient.take(draft["email"])
        if wait:
            raise _too_many(wait, "case submissions")
    try:
        result = await request.app[CASE_COMMIT].submit(draft)
    except IntegrityError:
        if draft.get("idempotency_key"):  # the same key at the same moment: answer as the first
            found = await IdempotentRequest.get_or_none(key=draft["idempotency_key"])
            if found is not None:
                return web.json_response(found.response, status=201,
                                         headers={"Idempotent-Replayed": "true"})
        raise
    return web.json_response(result, status=201)


async def _idempotent(request: web.Request, draft: dict[str, Any], caller: str
                      ) -> web.Response | None:
    """With an `Idempotency-Key`: the stored answer of the same key within 24 h, else
    None (and the draft carries the key, stored with the case in its transaction). A key
    belongs to its caller: another client's same key is another request."""
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return None
    if not 1 <= len(given) <= schemas.MAX_IDEMPOTENCY_KEY:
        raise ApiError(400, "invalid_field", "'Idempotency-Key' has 1 to "
                       f"{schemas.MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key")
    key = "cases:" + hashlib.sha256(f"{caller}\0{given}".encode()).hexdigest()
    now = request.app[SERVICES].clock.now()
    found = await IdempotentRequest.get_or_none(key=key)
    if found is not None and found.created_at > now - IDEMPOTENCY_WINDOW:
        return web.json_response(found.response, status=201,
                                 headers={"Idempotent-Replayed": "true"})
    if found is not None:
        await IdempotentRequest.filter(key=key).delete()  # older than the window: a new request
    draft["idempotency_key"] = key
    return None


async def _case_or_404(number: str) -> Case:
    found = cases.find_number(number[:32])
    case = await Case.get_or_none(number=found) if found else None
    if case is None:
        raise ApiError(404, "not_found", "no such case")
    return case


@routes.get("/api/v1/cases/{number}")
async def get_case(request: web.Request) -> web.Response:
    number = request.match_info["number"].upper()[:32]
    code = request.query.get("code")
    if code:
        case = await case_by_code(request, number, code)
    else:
        await require(request, "cases")
        case = await _case_or_404(number)
    return answer(schemas.CaseView(**_case_json(case, await cases.public_history(case))))


async def case_by_code(request: web.Request, number: str, code: str) -> Case:
    """The case if `code` is its access code, for the API and the residents' page.

    A client is refused (429) only for its own failures, before anything is looked at; a
    right code then always opens the case, however many strangers failed on it, and a
    wrong one counts against the client and the case (handlers/ratelimit.py,
    `Limits.code_wait`, says why the case's count never refuses the right code). Failures
    are logged without the code."""
    limits = request.app[SERVICES].limits
    client = limit_key(client_address(request))
    wait = limits.code_wait(client)
    if wait:
        raise _too_many(wait, "failed access-code attempts")
    found = cases.find_number(number)
    case = await Case.get_or_none(number=found) if found else None
    if case is not None and cases.code_matches(request.app[SERVICES].code_key,
                                               case.access_code_hash, code[:64]):
        return case
    wait = limits.code_failed(client, number)
    log.warning("wrong access code for %s from %s", number, client)
    if wait:
        raise _too_many(wait, "failed access-code attempts on this case")
    raise ApiError(404, "not_found", "no case with this number and access code")


@routes.post("/api/v1/cases/{number}/events")
async def case_event(request: web.Request) -> web.Response:
    await require(request, "cases")
    body = await keyed_body(request, schemas.CaseEvent)
    status, note, public = body.status, body.note, body.public
    if status is None and not note:
        raise ApiError(400, "missing_field", "give 'status' or 'note'", field="status")
    number = cases.find_number(request.match_info["number"][:32])
    try:
        done = await cases.staff_event(request.app[SERVICES], number, api_actor(request),
                                       status=status, note=note, public=public
                                       ) if number else None
    except audit.Refused as refused:  # a key of scope `cases` may: not reached today
        raise ApiError(403, "forbidden", f"this key may not do {refused.action}") from None
    if done is None:
        raise ApiError(404, "not_found", "no such case")
    case, event = done
    request.app[DISPATCHER].notify()
    return answer(schemas.CaseEventDone(**_case_json(case, id=event.id)), status=201)


# --- people ---------------------------------------------------------------------------


@routes.post("/api/v1/people")
async def create_person(request: web.Request) -> web.Response:
    await require(request, "admin")
    body = await keyed_body(request, schemas.NewPerson)
    wanted = people.parse_person(
        name=body.name, roles=list(body.roles), units=list(body.units), email=body.email,
        telegram_chat=body.telegram_chat_id, library_card=body.library_card,
        language=body.language, phone=body.phone, channels=request.app[SERVICES].channels,
        student=body.student)
    try:
        async with in_transaction():
            person = await people.create(request.app[SERVICES], wanted)
            await audited(request, "person.create", f"person:{person.id}",
                          roles=list(wanted.roles), units=list(wanted.units))
    except people.CardTaken:
        raise ApiError(409, "conflict", "this library card belongs to someone else",
                       field="library_card") from None
    return answer(schemas.PersonCreated(id=person.id), status=201)


@routes.post("/api/v1/people/{id}/link-codes")
async def create_link_code(request: web.Request) -> web.Response:
    await require(request, "admin")
    person = await _person_or_404(request)
    services = request.app[SERVICES]
    entry = await accounts.create_link_code(person, services.clock.now(), services.link_code_ttl)
    await audited(request, "person.link_code", f"person:{person.id}")
    link = {"link": f"https://t.me/{services.bot_username}?start={entry.code}"
            } if services.bot_username else {}
    return answer(schemas.LinkCode(code=entry.code, expires_at=entry.expires_at.isoformat(),
                                   **link), status=201)


def path_id(request: web.Request, what: str) -> int:
    """The `{id}` of the path as a row id; anything else (words, numbers past a database
    integer) is simply not found. Every `{id}` route reads it here."""
    number = whole_number(request.match_info["id"])
    if number is None:
        raise ApiError(404, "not_found", f"no such {what}")
    return number


async def _person_or_404(request: web.Request) -> Person:
    person = await Person.get_or_none(id=path_id(request, "person"))
    if person is None:
        raise ApiError(404, "not_found", "no such person")
    return person


@routes.patch("/api/v1/people/{id}")
async def update_person(request: web.Request) -> web.Response:
    """Notification preferences (the API side of `/ustawienia`)."""
    await require(request, "admin")
    person = await _person_or_404(request)
    body = await keyed_body(request, schemas.Preferences)
    changes = preferences.parse_preferences(body.model_dump(), person,
                                            request.app[SERVICES].channels.names)
    await preferences.set_preferences(person, changes)
    if changes:
        await audited(request, "person.preferences", f"person:{person.id}", fields=sorted(changes))
    return answer(schemas.PreferencesSaved(id=person.id, **changes))


@routes.post("/api/v1/students")
async def upsert_student(request: web.Request) -> web.Response:
    await require(request, "admin")
    body = await keyed_body(request, schemas.NewStudent)
    student_id = fit(Student, "id", str(body.id), "id")  # a number's digits: the column's limit
    name, class_name, guardians = body.name, body.class_name, list(body.guardians)
    async with in_transaction():
        found = set(await Person.filter(id__in=guardians).values_list("id", flat=True))
        missing = sorted(set(guardians) - found)
        if missing:
            raise ApiError(400, "invalid_field", f"no person with id {missing[0]}",
                           field="guardians")
        _, changed = await grades.upsert_student(student_id, name, class_name, guardians)
        if changed:
            await audited(request, "student.upsert", f"student:{student_id}",
                          guardians=guardians)
    return answer(schemas.StudentSaved(id=student_id, changed=changed), status=201)


# --- API keys ---------------------------------------------------------------------------


@routes.get("/api/v1/api-keys")
async def list_api_keys(request: web.Request) -> web.Response:
    await require(request, "admin")
    return answer(schemas.ApiKeys.model_validate({"keys": await auth.list_keys()}))


@routes.post("/api/v1/api-keys")
async def create_api_key(request: web.Request) -> web.Response:
    """A new key, shown in this answer only."""
    await require(request, "admin")
    body = await keyed_body(request, schemas.NewApiKey)
    scopes, label = list(body.scopes), body.label
    key = await auth.create_key(scopes, label)
    await audited(request, "api_key.create", "api-key", scopes=sorted(set(scopes)), label=label)
    return answer(schemas.ApiKeyCreated(key=key, scopes=sorted(set(scopes)), label=label),
                  status=201)


@routes.delete("/api/v1/api-keys/{id}")
async def revoke_api_key(request: web.Request) -> web.Response:
    await require(request, "admin")
    key_id = path_id(request, "key")
    if not await auth.revoke_key(key_id):
        raise ApiError(404, "not_found", "no such key")
    await audited(request, "api_key.revoke", f"api-key:{key_id}")
    return answer(schemas.ApiKeyRevoked(id=key_id, revoked=True))


# --- library --------------------------------------------------------------------------


@routes.get("/api/v1/library/renewals")
async def library_renewals(request: web.Request) -> web.Response:
    """Renewals granted through the gateway, for the library system to read back."""
    await require(request, "library")
    since_text = request.query.get("since", "1970-01-01T00:00:00+00:00")
    try:
        since = datetime.fromisoformat(since_text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, "invalid_field", "'since' must be an ISO 8601 date-time",
                       field="since") from None
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    return answer(schemas.Renewals.model_validate(
        {"renewals": await library.renewals_since(since)}))


@routes.post("/api/v1/library/overdue-run")
async def library_overdue_run(request: web.Request) -> web.Response:
    """Librarians run the reminder job now; repeating it sends nothing twice. With
    `?due=YYYY-MM-DD` it is the run for that day, done once across all instances."""
    await require(request, "library")
    due = request.query.get("due")
    summary = await run_job(request.app[SERVICES], "overdue-reminders", due=due)
    await audited(request, "library.overdue_run", "job:overdue-reminders", due=due)
    request.app[DISPATCHER].notify()
    return answer(schemas.JobSummary.model_validate(summary),
                  dumps=lambda v: json.dumps(v, default=str))


# --- announcements --------------------------------------------------------------------


async def _announcement(request: web.Request) -> Any:
    found = await Announcement.get_or_none(id=path_id(request, "announcement"))
    if found is None:
        raise ApiError(404, "not_found", "no such announcement")
    return found


@routes.post("/api/v1/announcements")
async def create_announcement(request: web.Request) -> web.Response:
    """Answers 202 at once; the fan-out runs in the publisher worker (and, should the
    process die first, in the next `scheduled-announcements` run)."""
    await require(request, "announce")
    body = await keyed_body(request, schemas.NewAnnouncement)
    audience = announcements.parse_audience(body.audience.model_dump())
    publish_at = None
    if body.publish_at is not None:
        publish_at = school.parse_time(body.publish_at, "publish_at")
    author = await Person.get_or_none(id=body.author_id) if body.author_id is not None else None
    if body.author_id is not None and author is None:
        raise ApiError(400, "invalid_field", "no person with this id", field="author_id")
    attachment = None
    if body.attachment is not None:
        attachment = _attachment(body.attachment, request.app[SETTINGS].attachment_max_size)
    announcement = await announcements.create(
        request.app[SERVICES], author=author, title=body.title, body=body.body,
        audience=audience, priority=body.priority, publish_at=publish_at, source="api",
        attachment=attachment, actor=api_actor(request))
    request.app[PUBLISHER].set()
    return answer(schemas.AnnouncementQueued(
        id=announcement.id, status=announcement.status,
        # (`create` always sets it; the column is nullable)
        publish_at=announcement.publish_at.isoformat() if announcement.publish_at else None),
        status=202)


def _attachment(item: schemas.NewAttachment, max_size: int) -> MessageAttachment:
    """An announcement's file, decoded: its media type must be one (a CR/LF in it was a
    header of its own in the mail), its size at most `max_size` (413)."""
    try:
        data = base64.b64decode(item.data, validate=True)
    except ValueError:
        raise ApiError(400, "invalid_field", "'attachment.data' must be base64",
                       field="attachment.data") from None
    if len(data) > max_size:
        raise ApiError(413, "too_large", "the attachment is too large", field="attachment.data")
    if not is_mime_type(item.content_type):
        raise ApiError(400, "invalid_field", "'attachment.content_type' must be a media "
                       "type such as application/pdf", field="attachment.content_type")
    return MessageAttachment(filename=item.filename, content_type=item.content_type, data=data)


@routes.get("/api/v1/announcements/{id}")
async def announcement_stats(request: web.Request) -> web.Response:
    """The counts as INTERFACES.md promises them: `sent` is every copy that left the
    gateway, delivered or not, so it does not fall as delivery reports arrive;
    `delivered` says how many of those the channel confirmed (the console's page splits
    them)."""
    await require(request, "announce")
    counts = await announcements.stats(await _announcement(request))
    return answer(schemas.AnnouncementStats.model_validate(
        {**counts, "sent": counts["sent"] + counts["delivered"]}))


def _refusal(refused: audit.Refused, conflict: str) -> ApiError:
    """A use-case's refusal as the API answers it."""
    if refused.reason == "forbidden":
        return ApiError(403, "forbidden", f"this key may not do {refused.action}")
    return ApiError(409, "conflict", conflict)


@routes.post("/api/v1/announcements/{id}/cancel")
async def cancel_announcement(request: web.Request) -> web.Response:
    """A key with scope `announce` acts for the office, as an admin does: under
    `announcements.may_withdraw` it may cancel or retract any announcement."""
    await require(request, "announce")
    found = await _announcement(request)
    try:
        done = await announcements.cancel(request.app[SERVICES], found.id, api_actor(request))
    except audit.Refused as refused:
        raise _refusal(refused, "only a scheduled announcement can be cancelled") from None
    if done is None:
        raise ApiError(404, "not_found", "no such announcement")
    return answer(schemas.AnnouncementState(id=done.id, status=done.status))


@routes.post("/api/v1/announcements/{id}/retract")
async def retract_announcement(request: web.Request) -> web.Response:
    """As cancelling: the use-case decides, drops the unsent copies, tells those who got
    it and audits, in one transaction."""
    await require(request, "announce")
    found = await _announcement(request)
    try:
        done = await announcements.retract(request.app[SERVICES], found.id, api_actor(request))
    except audit.Refused as refused:
        raise _refusal(refused, "only a published announcement can be retracted") from None
    if done is None:
        raise ApiError(404, "not_found", "no such announcement")
    retracted, notices = done
    request.app[DISPATCHER].notify()
    return answer(schemas.AnnouncementRetracted(id=retracted.id, status=retracted.status,
                                                notices=notices))


@routes.get("/ack/{token}")
async def acknowledgement_page(request: web.Request) -> web.Response:
    """The mail's acknowledgement link shows a page with a button and changes nothing:
    mail link scanners open every link on delivery (issue #11)."""
    services = request.app[SERVICES]
    found = await announcements.ack_target(services, request.match_info["token"])
    return _ack_page(request, found, done=False)


@routes.post("/ack/{token}")
async def acknowledge(request: web.Request) -> web.Response:
    found = await announcements.acknowledge(request.app[SERVICES], request.match_info["token"])
    return _ack_page(request, found, done=True)


def _ack_page(request: web.Request, found: Announcement | None, *, done: bool) -> web.Response:
    page = request.app[SERVICES].renderer.page(
        "ack.html", lang="pl", context={"announcement": found, "done": done,
                                        "action": request.path})
    return web.Response(status=200 if found else 404, text=page, content_type="text/html",
                        charset="utf-8", headers=PAGE_HEADERS)


@routes.get("/unsubscribe/{token}")
async def unsubscribe_page(request: web.Request) -> web.Response:
    """A person following the `List-Unsubscribe` link in a browser gets a button; opening
    the link changes nothing, since mail scanners open every link (as with /ack)."""
    found = unsubscribe.read(request.app[SERVICES], request.match_info["token"])
    return _unsubscribe_page(request, found, done=False)


@routes.post("/unsubscribe/{token}")
async def unsubscribe_now(request: web.Request) -> web.Response:
    """RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click` with no
    cookies and no sign-in; the signed token is the whole authority. The button on the
    page posts here too, so the answer is that page."""
    services = request.app[SERVICES]
    person = await people.unsubscribe(services, request.match_info["token"])
    found = unsubscribe.read(services, request.match_info["token"]) if person else None
    return _unsubscribe_page(request, found, done=True)


def _unsubscribe_page(request: web.Request, found: unsubscribe.OptOut | None, *,
                      done: bool) -> web.Response:
    page = request.app[SERVICES].renderer.page(
        "unsubscribe.html", lang="pl", context={"opt_out": found, "done": done,
                                                "action": request.path})
    return web.Response(status=200 if found else 404, text=page, content_type="text/html",
                        charset="utf-8", headers=PAGE_HEADERS)


#: pages carry no scripts, frames or foreign resources (MDN, Content-Security-Policy)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the path
    "Cache-Control": "no-store",
}


# --- Telegram webhook -------------------------------------------------------------------


#: an update is a message with its entities; a few kilobytes, even with a long caption
@routes.post("/telegram/webhook")
async def telegram_webhook(request: web.Request) -> web.Response:
    """Updates pushed by Telegram (bots/webhook.py decides what is accepted)."""
    settings = request.app[SETTINGS]
    try:
        webhook.authorise(settings.telegram_mode, settings.telegram_webhook_secret,
                          request.headers.get(webhook.SECRET_HEADER, ""))
        update = webhook.checked_update(await json_body(request, webhook.MAX_UPDATE_BYTES))
    except webhook.Refused as refusal:
        raise ApiError(refusal.status, refusal.code, refusal.message) from None
    await request.app[UPDATE_COMMIT].submit(update)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
