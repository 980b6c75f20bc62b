"""The routing table: every command, mailbox and dialogue in one ordered place.

Reading `ROUTES` top to bottom tells the priority. Each entry says which commands it
answers (Polish first, English aliases), who may use it, and the help line's template
key. The router resolves the sender, checks permission, runs the handler, and turns its
replies into outbox deliveries to the sender's own address (priority "reply", ahead of
bulk traffic). Handlers never see SMTP or the Bot API.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from handlers import (
    accounts,
    announcements,
    attendance,
    bounces,
    cases,
    catalogue,
    claims,
    dialogue,
    grades,
    health,
    homework,
    i18n,
    library,
    reading_lists,
    remarks,
    school,
    topics,
)
from handlers.channels import Envelope
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply, UserFacingError
from store.models import Person
from store.outbox import PRIORITY_REPLY, Delivery

log = logging.getLogger(__name__)

Handler = Callable[[ServiceContext, InboundMessage, Person | None], Awaitable[list[Reply]]]


@dataclass(frozen=True)
class Route:
    name: str
    commands: tuple[str, ...]
    handle: Handler
    help: str
    roles: tuple[str, ...] = ()  # empty: anyone
    linked: bool = False  # needs a linked person


#: what a guardian's school command shows of one child, by kind (the command's button
#: prefix too); named here, not registered by the modules themselves, so that the table
#: is whole as soon as the router is imported
SCHOOL_ANSWERS: dict[str, school.Answer] = {
    "attendance": attendance.answer,
    "remarks": remarks.answer,
    "homework": homework.answer,
    "topics": topics.answer,
}


def _school(kind: str) -> Handler:
    answer = SCHOOL_ANSWERS[kind]

    async def handle(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                     ) -> list[Reply]:
        return await school.handle_command(kind, answer, ctx, person)
    return handle


def _school_button(kind: str) -> Handler:
    answer = SCHOOL_ANSWERS[kind]

    async def handle(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                     ) -> list[Reply]:
        return await school.handle_callback(answer, ctx, (msg.callback or "").partition(":")[2],
                                            person)
    return handle


#: who may ask for a pupil's register records: a guardian and the pupil themselves (#20);
#: which pupils each may see is `school.pupils_of`'s answer
SCHOOL_ROLES = ("parent", "student")

ROUTES: tuple[Route, ...] = (
    Route("start", ("start",), accounts.handle_start, "start"),
    Route("help", ("pomoc", "help"), lambda c, m, p: _help(m, p), "help"),
    Route("case", ("sprawa", "new"), cases.start_dialogue, "case"),
    Route("status", ("status",), cases.handle_status, "status"),
    Route("grades", ("oceny", "grades"), grades.handle_grades, "grades", SCHOOL_ROLES, True),
    Route("attendance", ("obecnosci", "obecności", "attendance"), _school("attendance"),
          "attendance", SCHOOL_ROLES, True),
    Route("remarks", ("uwagi", "remarks"), _school("remarks"), "remarks", SCHOOL_ROLES, True),
    Route("homework", ("zadania", "homework"), _school("homework"), "homework", SCHOOL_ROLES,
          True),
    Route("topics", ("tematy", "topics"), _school("topics"), "topics", SCHOOL_ROLES, True),
    Route("loans", ("wypozyczenia", "loans"), library.handle_loans, "loans", linked=True),
    Route("renew", ("przedluz", "renew"), library.handle_renew, "renew", linked=True),
    Route("search", catalogue.COMMANDS, catalogue.handle_command, "search"),
    Route("lists", ("listy", "lists"), reading_lists.handle_command, "lists", linked=True),
    Route("announce", ("ogloszenie", "announce"), announcements.handle_command, "announce",
          ("staff",), True),
    Route("settings", ("ustawienia", "settings"), accounts.handle_settings, "settings",
          linked=True),
    Route("phone", ("telefon", "phone"), claims.command("sms"), "phone", linked=True),
    Route("stop", ("stop",), accounts.handle_stop, "stop"),
    Route("cancel", ("anuluj", "cancel"), lambda c, m, p: _cancel(m), "cancel"),
)

#: mail to `<mailbox>@EMIL_MAIL_DOMAIN`
MAILBOXES: dict[str, Handler] = {
    "sprawy": cases.handle_email,
    "biblioteka": library.handle_email,
    "ogloszenia": announcements.handle_email,
    # reports about our own mail, only at the per-message addresses (mail/bounces.py)
    "bounce": bounces.handle_report,
}

#: inline-button callbacks: "<prefix>:<data>"
CALLBACKS: dict[str, Handler] = {
    "grades": grades.handle_grades_callback,
    "ack": announcements.handle_ack_callback,
    "attendance": _school_button("attendance"),
    "remarks": _school_button("remarks"),
    "homework": _school_button("homework"),
    "topics": _school_button("topics"),
    catalogue.PREFIX: catalogue.handle_callback,
    reading_lists.CALLBACK: reading_lists.handle_callback,
}

#: a dialogue's next step: (replies, next step or None, data)
DIALOGUES = {
    "case": cases.continue_dialogue,
    "case_message": cases.continue_message,
    "announcement": announcements.continue_dialogue,
}

_BY_COMMAND = {command: route for route in ROUTES for command in route.commands}


def allowed(route: Route, person: Person | None) -> bool:
    if route.linked and person is None:
        return False
    if not route.roles:
        return True
    roles = set(person.roles if person else [])
    return bool(roles & set(route.roles)) or "admin" in roles


async def _help(msg: InboundMessage, person: Person | None) -> list[Reply]:
    visible = [r for r in ROUTES if allowed(r, person) or not r.linked and not r.roles]
    return [Reply("help", {"routes": [r.help for r in visible], "linked": person is not None})]


async def _cancel(msg: InboundMessage) -> list[Reply]:
    return [Reply("cancelled" if await dialogue.cancel(msg) else "nothing_to_cancel", {})]


async def route(ctx: ServiceContext, msg: InboundMessage, person: Person | None) -> list[Reply]:
    """Decide what a message means and run its handler. Call inside a transaction."""
    if ctx.channels[msg.channel].mailboxes:
        handler = MAILBOXES.get(msg.mailbox or "")
        if handler is None:
            log.info("dropped: mail to unknown mailbox %r", msg.mailbox)
            return []
        return await handler(ctx, msg, person)

    if not msg.private:
        if msg.command is not None or msg.callback is not None:
            return [Reply("private_only", {})]
        return []  # ordinary chatter in a group is not for us

    if msg.callback is not None:
        prefix, _, _ = msg.callback.partition(":")
        callback = CALLBACKS.get(prefix)
        if callback is None:
            log.info("dropped: unknown callback %r", prefix)
            return []
        return await callback(ctx, msg, person)

    if msg.command is not None:
        own = ctx.channels[msg.channel].commands.get(msg.command)
        if own is not None:  # the channel's own word first (SMS STOP is an opt-out)
            return await own(ctx, msg, person)
        entry = _BY_COMMAND.get(msg.command)
        if entry is None:
            guess = difflib.get_close_matches(msg.command, list(_BY_COMMAND), n=1)
            return [Reply("unknown_command", {"command": msg.command,
                                              "guess": guess[0] if guess else None})]
        if not allowed(entry, person):
            return [Reply("not_linked" if person is None else "not_allowed", {})]
        if entry.name != "cancel":
            await dialogue.cancel(msg)  # a new command ends any half-done dialogue
        return await entry.handle(ctx, msg, person)

    conv = await dialogue.current(ctx, msg)
    if conv is not None:
        replies, step, data = await DIALOGUES[conv.kind](ctx, msg, person, conv.step, conv.data)
        await dialogue.advance(ctx, conv, step, data)
        return replies
    if msg.replying_to:
        follow_up = await cases.follow_up_by_reply(ctx, msg, person)
        if follow_up is not None:
            return follow_up
    if ctx.channels[msg.channel].cases_by_text:
        # text is a case there (SMS): it adds to the case we last wrote about, or opens one
        return await cases.handle_text(ctx, msg, person)
    return [Reply("free_text", {"linked": person is not None})]


def to_deliveries(
    ctx: ServiceContext, msg: InboundMessage, person: Person | None, replies: list[Reply]
) -> list[Delivery]:
    """Render replies for the sender's channel, which packs them: mail replies are
    threaded (RFC 5322 In-Reply-To and References) and carry the case tag where there is
    one; a chat's carry their buttons."""
    lang = i18n.language(person.language if person else msg.language_hint)
    channel = ctx.channels[msg.channel]
    out = []
    for n, reply in enumerate(replies):
        context: dict[str, Any] = {**reply.context, "person": person}
        rendered = channel.rendered(ctx.renderer, reply.template, lang, context)
        payload = channel.payload(ctx, rendered, Envelope(
            mailbox=msg.mailbox or "sprawy", case=reply.case, in_reply_to=msg.message_id,
            references=tuple(msg.references), answering=msg.subject or "",
            buttons=reply.buttons, plain_letters=bool(person and person.plain_letters)))
        out.append(Delivery(
            key=f"reply:{msg.channel}:{msg.inbound_id}:{n}",
            channel=msg.channel,
            recipient=msg.address,
            payload=payload,
            priority=PRIORITY_REPLY,
            person_id=person.id if person else None,
            # a reply naming a case is a message about it (what a later text answers)
            cause=cases.about(reply.case) if reply.case else f"reply:{reply.template}",
        ))
    return out


def paid_answers(ctx: ServiceContext, msg: InboundMessage, replies: list[Reply]
                 ) -> list[Reply]:
    """The replies a paid channel sends back: each one costs the town a message, so one
    address gets at most `Limits.paid_answers_per_address` of them (not the chat limit,
    600 an hour: one number could spend the month's budget that urgent notices to
    everyone need). Past it the message has still been routed — a text still adds to its
    case, a STOP still stops — only the answers are dropped, with no "zwolnij" (it would
    cost the same). A `vital` reply (an opt-out's confirmation) goes past the limit
    within its own small allowance."""
    if ctx.limits is None:
        return replies
    key = f"{msg.channel}:{msg.address}"
    sent = []
    for reply in replies:
        if (ctx.limits.paid_answers_per_address.take(key) == 0
                or (reply.vital and ctx.limits.vital_past_paid_limit.take(key) == 0)):
            sent.append(reply)
        else:
            log.info("dropped: the %s answer %r, past the address's limit on paid answers",
                     msg.channel, reply.template)
    return sent


#: `handle(..., person=UNKNOWN)`: the caller has not looked the sender up
UNKNOWN: Any = object()


async def handle(ctx: ServiceContext, msg: InboundMessage, person: Person | None = UNKNOWN
                 ) -> list[Delivery]:
    """The inbound funnel: resolve the sender (unless the caller already did, for a whole
    batch), route, and return the replies, for the caller to queue with `notify.queue`
    in the same transaction."""
    if person is UNKNOWN:
        person = await accounts.person_by_address(msg.channel, msg.address)
    channel = ctx.channels[msg.channel]
    await ctx.channels.prove(msg)
    if not msg.proof and not channel.mailboxes:
        # closed by default: commands and dialogues take an unproven sender for a
        # stranger (mailbox handlers ask for proof before they change anything)
        person = None
    # a paid channel's messages are all routed (each costs its sender; nothing accepted
    # is lost) and its answers are limited instead, far lower (`paid_answers`)
    if (not channel.mailboxes and not channel.paid and ctx.limits is not None
            and not msg.callback_id):
        if ctx.limits.bot_per_chat.take(msg.address) > 0:
            # over the limit: one polite "zwolnij" now and then, otherwise silence
            told = ctx.limits.slow_down_notices.take(msg.address) == 0
            return to_deliveries(ctx, msg, person, [Reply("slow_down", {})] if told else [])
    if not msg.private:
        # a group is not a person: nobody there may link it or see anyone's data
        person = None
    try:
        replies = await route(ctx, msg, person)
    except UserFacingError as error:
        replies = [Reply(error.template, error.context)]
    if person is not None and person.last_channel != msg.channel:
        await Person.filter(id=person.id).update(last_channel=msg.channel)
        # an address marked failing is never anyone's last channel (handlers/health.py):
        # only here, off the common path, can it be one that works again
        if channel.revived_by_message:
            await health.revive(msg.channel, msg.address)
    if channel.paid:
        replies = paid_answers(ctx, msg, replies)
    deliveries = to_deliveries(ctx, msg, person, replies)
    if msg.callback_id:  # a pressed button is answered first (its spinner stops)
        deliveries.insert(0, Delivery(
            key=f"cbanswer:{msg.inbound_id}", channel=msg.channel, recipient=msg.address,
            payload={"answer_callback": msg.callback_id}, priority=PRIORITY_REPLY))
    return deliveries
