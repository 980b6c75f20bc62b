"""Intranet announcements: staff tell units and roles, and see who got it.

Who may announce: people with role `staff` to the units they belong to (optionally
narrowed to roles), people with role `admin` — and API keys with scope `announce` — to
any units and roles. The audience is everyone in any of its units who also has any of its
roles: roles narrow, never widen (a clerk of one unit adding `rola:parent` used to reach
every parent in town). Without units (admins and keys only) it is everyone with the roles;
a person in several units is counted once.

Fan-out writes one delivery row and one outbox row per recipient, in chunks, with keys
(announcement, person): re-running a publish that died half-way completes it without
sending anyone a second copy. Bulk rows go out behind replies (outbox priority), and
normal-priority ones wait for the recipient's quiet hours; `urgent` ignores them.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from tortoise.transactions import in_transaction

from handlers import audit, dialogue, fanout
from handlers.announcements_text import markdownish
from handlers.context import ServiceContext
from handlers.identity import require_proof
from handlers.message import Attachment, InboundMessage, InvalidInput, Reply
from handlers.text import whole_number
from store.models import Announcement, AnnouncementDelivery, Outbox, Person
from store.outbox import PRIORITY_BULK, PRIORITY_NOTICE

CHUNK = 2000
ACK_BUTTON = "Przeczytane / Read"
_TAG = re.compile(r"\[OGL-([A-Za-z0-9_-]{8,64})\]")


# --- who may announce to whom -------------------------------------------------------------


def may_announce(person: Person | None) -> bool:
    return person is not None and bool({"staff", "admin"} & set(person.roles or []))


def check_audience(person: Person | None, audience: dict[str, list[str]]) -> str | None:
    """None if `person` (None: an API key with scope `announce`) may address `audience`,
    else why not."""
    units, roles = audience.get("units") or [], audience.get("roles") or []
    if not units and not roles:
        return "empty"
    if person is None or "admin" in (person.roles or []):
        return None
    if not may_announce(person):
        return "not_staff"
    if not units or not set(units) <= set(person.units or []):
        return "foreign_units"
    return None


def may_withdraw(actor: audit.Actor, announcement: Announcement) -> bool:
    """Whether `actor` may cancel (scheduled) or retract (published) `announcement`: its
    author, or an admin, or an API key with scope `announce`, which acts for the office
    as an admin does. Seeing an announcement (every staff member of its units does) is not
    enough: a colleague retracting another's announcement tells its whole audience it was
    withdrawn (issue #18, fault 7). The use-cases `cancel` and `retract` ask this one
    rule, whichever channel calls them; the console asks it to offer the buttons."""
    person = actor.person
    if person is None:
        return actor.holds("announce")
    return "admin" in (person.roles or []) or (
        announcement.author_id is not None and announcement.author_id == person.id)


def parse_audience(value: Any, where: str = "audience") -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise InvalidInput(where, f"'{where}' must be an object with 'units' and/or 'roles'")
    out: dict[str, list[str]] = {}
    for key in ("units", "roles"):
        items = value.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise InvalidInput(f"{where}.{key}", f"'{where}.{key}' must be a list of names")
        out[key] = sorted(set(items))
    if not out["units"] and not out["roles"]:
        raise InvalidInput(where, f"'{where}' needs at least one unit or role")
    return out


def audience_from_text(text: str) -> dict[str, list[str]]:
    """"szkola-1, urzad, rola:staff" → {"units": [...], "roles": [...]} (bot dialogue)."""
    units, roles = [], []
    for word in re.split(r"[,;\s]+", text.strip().lower()):
        if not word:
            continue
        if word.startswith(("rola:", "role:")):
            roles.append(word.split(":", 1)[1])
        else:
            units.append(word)
    return {"units": sorted(set(units)), "roles": sorted(set(roles))}


def in_audience(person: Person, units: set[str], roles: set[str]) -> bool:
    """In one of the units (if any are named) and holding one of the roles (if any)."""
    if units and not units & set(person.units or []):
        return False
    return not roles or bool(roles & set(person.roles or []))


async def recipients(audience: dict[str, list[str]]) -> list[Person]:
    """Everyone the audience names (see the module's docstring), each once."""
    units, roles = set(audience.get("units") or []), set(audience.get("roles") or [])
    if not units and not roles:
        return []
    people = await Person.all().order_by("id")
    return [p for p in people if in_audience(p, units, roles)]


# --- creating, publishing, retracting -------------------------------------------------------


async def create(ctx: ServiceContext, *, author: Person | None, title: str, body: str,
                 audience: dict[str, list[str]], priority: str = "normal",
                 publish_at: datetime | None = None, source: str = "api",
                 confirmed: bool = True, attachment: Attachment | None = None,
                 actor: audit.Actor | None = None) -> Announcement:
    """Store an announcement (scheduled, or pending its author's confirmation by mail).
    A staff member writing by bot or mail is the actor in the audit trail; the API and
    the console record their own caller."""
    now = ctx.clock.now()
    if actor is None and author is not None and source in ("telegram", "email"):
        actor = audit.Actor.of(author, "bot" if source == "telegram" else "mail")
    announcement = await Announcement.create(
        attachment=None if attachment is None else {
            "filename": attachment.filename, "content_type": attachment.content_type,
            "data": base64.b64encode(attachment.data).decode()},
        author_id=author.id if author else None, title=title[:200], body=body,
        audience=audience, priority=priority, source=source, created_at=now,
        publish_at=publish_at or now, status="scheduled" if confirmed else "pending",
        confirm_token=None if confirmed else secrets.token_urlsafe(12),
    )
    if actor is not None:
        await audit.record(actor, "announcement.create", f"announcement:{announcement.id}", now,
                           title=announcement.title, audience=audience, priority=priority)
    return announcement


def ack_serializer(ctx: ServiceContext) -> URLSafeTimedSerializer:
    """Signed and dated: a link works for `EMIL_ACK_TTL_DAYS` (itsdangerous checks the age)."""
    return _ack_serializer(ctx.signing_secret)


@lru_cache(maxsize=4)
def _ack_serializer(secret: str) -> URLSafeTimedSerializer:
    """One per secret: building one per link was a tenth of a 20,000-person fan-out."""
    return URLSafeTimedSerializer(secret, salt="announcement-ack")


def ack_token(ctx: ServiceContext, announcement_id: int, person_id: int) -> str:
    return ack_serializer(ctx).dumps([announcement_id, person_id])


async def publish(ctx: ServiceContext, announcement: Announcement) -> int:
    """Fan an announcement out (idempotent); returns how many recipients were queued now."""
    people = await recipients(announcement.audience)
    addresses = await fanout.addresses_of([p.id for p in people])
    tokens: dict[int, str] = {}
    urgent = announcement.priority == "urgent"

    def personalise(recipient: fanout.Recipient, channel: str, rendered: dict[str, str]
                    ) -> dict[str, str]:
        assert recipient.person is not None  # the audience is people, each given a token below
        return with_ack_link(ctx, rendered, tokens[recipient.person.id])

    notice = fanout.Notice(
        kind="announcements", template="announcement", key=f"ann:{announcement.id}",
        context=ACK_CONTEXT | {"announcement": announcement}, urgent=urgent,
        priority=PRIORITY_NOTICE if urgent else PRIORITY_BULK, mailbox="ogloszenia",
        personalise=personalise, buttons=ack_buttons(announcement.id),
        # kept once on the announcement, not in 20,000 rows
        carry={"attachment_of": announcement.id} if announcement.attachment else None)
    queued = 0
    for start in range(0, len(people), CHUNK):
        chunk = people[start:start + CHUNK]
        now = ctx.clock.now()
        rows = []
        for person in chunk:
            tokens[person.id] = ack_token(ctx, announcement.id, person.id)
            rows.append(AnnouncementDelivery(announcement_id=announcement.id, person_id=person.id,
                                             ack_token=tokens[person.id], created_at=now))
        async with in_transaction():
            await AnnouncementDelivery.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
            queued += (await fanout.fan_out(ctx, chunk, notice, now, addresses=addresses)).queued
        tokens.clear()
    await Announcement.filter(id=announcement.id, status="scheduled").update(
        status="published", published_at=ctx.clock.now())
    return queued


#: the shared rendering's place-holder for each person's acknowledgement link: in the
#: text where a template writes `{{ ack }}` (mail), and as the notice's `link` — the page
#: with the whole announcement and its button — which a channel without buttons (SMS)
#: ends its text with
ACK = "__ACK__"
ACK_CONTEXT = {"ack": ACK, "link": ACK}


def ack_buttons(announcement_id: int) -> list[list[tuple[str, str]]]:
    """The Read button, for the channels that show buttons (the same for everyone: the
    person is the one who presses it)."""
    return [[(ACK_BUTTON, f"ack:{announcement_id}")]]


def with_ack_link(ctx: ServiceContext, rendered: dict[str, str], token: str
                  ) -> dict[str, str]:
    """The shared rendering with this person's acknowledgement link, in every part, before
    the channel packs it (an SMS is counted in parts with the link in, not before)."""
    link = f"{ctx.base_url}/ack/{token}"
    return {k: v.replace(ACK, link) if isinstance(v, str) else v for k, v in rendered.items()}


async def scheduled_run(ctx: ServiceContext) -> dict[str, Any]:
    """Publish every announcement whose time has come (and finish any that died half-way)."""
    due = await Announcement.filter(status="scheduled", publish_at__lte=ctx.clock.now())
    queued = 0
    for announcement in due:
        queued += await publish(ctx, announcement)
    return {"published": len(due), "queued": queued}


async def _withdrawable(announcement_id: int, actor: audit.Actor, action: str
                        ) -> Announcement | None:
    """The announcement, locked for the caller's transaction, once `may_withdraw` lets
    `actor` (else `audit.Refused`); None: there is no such announcement."""
    found = await Announcement.select_for_update().get_or_none(id=announcement_id)
    if found is not None and not may_withdraw(actor, found):
        raise audit.Refused("forbidden", action)
    return found


async def cancel(ctx: ServiceContext, announcement_id: int, actor: audit.Actor
                 ) -> Announcement | None:
    """Cancel a scheduled announcement, or an e-mailed draft awaiting its author's
    confirmation — the use-case the console, the API and mail call: `may_withdraw` decides
    who may, and the change and its audit entry commit together. `audit.Refused`
    ("forbidden", or "conflict" when it is neither scheduled nor pending); None: there is
    no such announcement."""
    async with in_transaction():
        found = await _withdrawable(announcement_id, actor, "announcement.cancel")
        if found is None:
            return None
        if found.status not in ("scheduled", "pending"):
            raise audit.Refused("conflict", "announcement.cancel")
        await Announcement.filter(id=found.id).update(status="cancelled")
        found.status = "cancelled"
        await audit.record(actor, "announcement.cancel", f"announcement:{found.id}",
                           ctx.clock.now())
    return found


async def retract(ctx: ServiceContext, announcement_id: int, actor: audit.Actor
                  ) -> tuple[Announcement, int] | None:
    """Withdraw a sent announcement — the use-case the console and the API call:
    `may_withdraw` decides who may; then, in one transaction, unsent copies are dropped,
    everyone who got it is told it was withdrawn, and the action is audited. Returns the
    announcement and how many retraction notices were queued; `audit.Refused`
    ("forbidden", or "conflict" when it is not published); None: no such announcement."""
    now = ctx.clock.now()
    async with in_transaction():
        announcement = await _withdrawable(announcement_id, actor, "announcement.retract")
        if announcement is None:
            return None
        if announcement.status != "published":
            raise audit.Refused("conflict", "announcement.retract")
        await Announcement.filter(id=announcement.id).update(status="retracted",
                                                             retracted_at=now)
        announcement.status, announcement.retracted_at = "retracted", now
        await Outbox.filter(cause=f"ann:{announcement.id}", status="pending").update(
            status="cancelled", last_error="announcement retracted")
        got = await Outbox.filter(cause=f"ann:{announcement.id}",
                                 status__in=("sent", "delivered")).values_list(
            "person_id", "channel", "recipient")
        people = {p.id: p for p in await Person.filter(id__in={g[0] for g in got})}
        told = [fanout.Recipient(people.get(pid), [(channel, recipient)],
                                 people[pid].language if pid in people else "pl")
                for pid, channel, recipient in got]
        outcome = await fanout.fan_out(ctx, told, fanout.Notice(
            kind="announcements", template="announcement_retracted", urgent=True,
            key=f"ann-retract:{announcement.id}", mailbox="ogloszenia",
            context={"announcement": announcement}), now)
        await audit.record(actor, "announcement.retract", f"announcement:{announcement.id}",
                           now, notices=outcome.queued)
    return announcement, outcome.queued


def read_ack_token(ctx: ServiceContext, token: str) -> tuple[int, int] | None:
    """(announcement, person) of a valid, unexpired link; None otherwise."""
    try:
        announcement_id, person_id = ack_serializer(ctx).loads(
            token[:512], max_age=int(ctx.ack_ttl.total_seconds()))
        return int(announcement_id), int(person_id)
    except (BadSignature, ValueError, TypeError):  # SignatureExpired is a BadSignature
        return None


async def ack_target(ctx: ServiceContext, token: str) -> Announcement | None:
    """The announcement a link acknowledges, without acknowledging it (the GET page:
    mail scanners open links, so only the page's button, a POST, acknowledges)."""
    found = read_ack_token(ctx, token)
    return None if found is None else await Announcement.get_or_none(id=found[0])


async def acknowledge(ctx: ServiceContext, token: str) -> Announcement | None:
    found = read_ack_token(ctx, token)
    if found is None:
        return None
    announcement_id, person_id = found
    await AnnouncementDelivery.filter(announcement_id=announcement_id, person_id=person_id,
                                      acked_at__isnull=True).update(acked_at=ctx.clock.now())
    return await Announcement.get_or_none(id=announcement_id)


#: where a copy can end, as the author sees it; disjoint: a bounced copy is not sent
STATES = ("delivered", "sent", "bounced", "failed", "waiting", "cancelled")
#: outbox statuses that are one state to the author
_STATE_OF = {"pending": "waiting", "sending": "waiting"}


async def stats(announcement: Announcement, limit: int = 1000) -> dict[str, Any]:
    """Delivery counts and who has not got or not acknowledged it (for the author).

    Each person counts once, by where their copy ended: the newest row of its chain (a
    blocked bot's row fails and its fallback by mail is sent: the person counts as sent,
    not failed). The states are disjoint — delivered (the channel confirmed it), sent (it
    left; no word since), bounced (it came back), failed, waiting — and people nobody
    could reach count as failed. `channels` counts the rows themselves per channel and
    state, fallbacks and all: where copies went and where they stopped. Three queries, as
    the page reloads itself while copies go out."""
    rows = await Outbox.filter(cause=f"ann:{announcement.id}").order_by("id").values_list(
        "person_id", "channel", "status")
    ended: dict[Any, str] = {}
    channels: dict[str, dict[str, int]] = {}
    for n, (pid, channel, status) in enumerate(rows):
        state = _STATE_OF.get(status, status)
        counts = channels.setdefault(channel, dict.fromkeys(STATES, 0))
        counts[state] = counts.get(state, 0) + 1
        ended[pid if pid is not None else ("row", n)] = state
    everyone = await AnnouncementDelivery.filter(announcement_id=announcement.id).values_list(
        "person_id", "acked_at")
    unreachable = [pid for pid, _ in everyone if pid not in ended]
    unacked = [pid for pid, at in everyone if at is None]
    by_state = dict.fromkeys(STATES, 0)
    for state in ended.values():
        by_state[state] = by_state.get(state, 0) + 1
    lost = [pid for pid, state in ended.items() if state in ("failed", "bounced")
            and isinstance(pid, int)] + unreachable
    names = dict(await Person.filter(id__in=set(lost[:limit]) | set(unacked[:limit]))
                 .values_list("id", "name"))
    return {
        "id": announcement.id, "status": announcement.status, "title": announcement.title,
        "recipients": len(everyone),
        **by_state,
        "queued": by_state["waiting"],
        "failed": by_state["failed"] + len(unreachable),
        "unreachable": len(unreachable),
        "acknowledged": len(everyone) - len(unacked),
        "channels": channels,
        "failed_recipients": [{"id": p, "name": names.get(p)} for p in lost][:limit],
        "unacknowledged": [{"id": p, "name": names.get(p)} for p in unacked[:limit]],
    }


# --- Telegram: /ogloszenie dialogue, status, the Read button --------------------------------


async def handle_command(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    assert person is not None
    if msg.args and msg.args[0].lower() == "status":
        latest = await Announcement.filter(author_id=person.id).order_by("-id").limit(3)
        return [Reply("announcement_status", {"items": [await stats(a, 0) for a in latest]})]
    await dialogue.begin(ctx, msg, "announcement", "audience")
    return [Reply("announcement_ask_audience", {"units": person.units or []})]


async def continue_dialogue(ctx: ServiceContext, msg: InboundMessage, person: Person | None,
                            step: str, data: dict) -> tuple[list[Reply], str | None, dict]:
    text = msg.text.strip()
    if step == "audience":
        audience = audience_from_text(text)
        problem = check_audience(person, audience)
        if problem:
            return [Reply("announcement_bad_audience", {"problem": problem,
                                                         "units": person.units if person else []})
                    ], "audience", data
        count = len(await recipients(audience))
        return [Reply("announcement_ask_title", {"count": count})], "title", {"audience": audience}
    if step == "title":
        return [Reply("announcement_ask_body", {})], "body", {**data, "title": text[:200]}
    if step == "body":
        data = {**data, "body": text}
        count = len(await recipients(data["audience"]))
        return [Reply("announcement_preview", {"data": data, "count": count,
                                               "body": markdownish(text)})], "confirm", data
    if text.lower() in ("tak", "yes", "t", "y", "wyślij", "wyslij", "send"):
        announcement = await create(ctx, author=person, title=data["title"], body=data["body"],
                                    audience=data["audience"], source="telegram")
        queued = await publish(ctx, announcement)
        return [Reply("announcement_sent", {"id": announcement.id, "count": queued})], None, {}
    return [Reply("cancelled", {})], None, {}


async def handle_ack_callback(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    announcement_id = whole_number((msg.callback or "").partition(":")[2])
    if person is None or announcement_id is None:
        return []
    await AnnouncementDelivery.filter(announcement_id=announcement_id, person_id=person.id,
                                      acked_at__isnull=True).update(acked_at=ctx.clock.now())
    return []  # the button's own answer ("Dziękujemy") is the callback answer


# --- email: ogloszenia@ ---------------------------------------------------------------------


async def handle_email(ctx: ServiceContext, msg: InboundMessage, person: Person | None):
    """A staff member's mail becomes a draft; nothing is sent until they reply with the
    keyword to the preview, which only their registered address receives — so a forged
    sender cannot broadcast."""
    tag = _TAG.search(msg.subject or "")
    if may_announce(person):
        require_proof(msg)  # no town-branded preview of a forger's text in staff inboxes
    if tag:
        draft = await Announcement.get_or_none(confirm_token=tag.group(1), status="pending")
        first = next((line.strip().lower() for line in msg.text.splitlines() if line.strip()), "")
        if draft is None or person is None or draft.author_id != person.id:
            return [Reply("announcement_confirm_unknown", {})]
        if not first.startswith(("potwierdzam", "confirm")):
            try:  # its author: allowed; cancelled meanwhile by another way: the same
                await cancel(ctx, draft.id, audit.Actor.of(person, "mail"))
            except audit.Refused:
                pass
            return [Reply("announcement_cancelled", {"announcement": draft})]
        await Announcement.filter(id=draft.id).update(status="scheduled", confirm_token=None)
        await audit.record(audit.Actor.of(person, "mail"), "announcement.confirm",
                           f"announcement:{draft.id}", ctx.clock.now())
        draft.status = "scheduled"
        queued = await publish(ctx, draft)
        return [Reply("announcement_sent", {"id": draft.id, "count": queued})]
    if not may_announce(person):
        return [Reply("announcement_not_allowed", {})]
    assert person is not None
    audience = {"units": sorted(person.units or []), "roles": []}
    if check_audience(person, audience):
        return [Reply("announcement_not_allowed", {})]
    files = [a for a in msg.attachments if len(a.data) <= ctx.attachment_max_size]
    draft = await create(ctx, author=person, title=msg.subject or "Ogłoszenie", body=msg.text,
                         audience=audience, source="email", confirmed=False,
                         attachment=files[0] if files else None)
    count = len(await recipients(audience))
    return [Reply("announcement_confirm", {"announcement": draft, "count": count,
                                           "token": draft.confirm_token})]
