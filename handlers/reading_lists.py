"""Reading lists by subscription (issue #20): the library publishes lists, readers follow them.

The library system posts its lists to `POST /hooks/library/lists` (signed with the
library's secret, like the loans), each by its own id. A list sent again *replaces* what
we hold of it: its items are the ones sent, known items keep their row (and are updated
in place), items no longer sent are removed, and only the items we have not seen before
are news. An item is known by its `key`: the ISBN (digits only) when the library gives
one, otherwise its title and author normalised (letters without diacritics, lower case,
punctuation and spacing ignored) — so "Lalka, B. Prus" and "LALKA — b prus" are one book
and a corrected comma is not announced as a new one.

When a list gains items, each subscriber gets one message listing the new items only,
through the one fan-out (notice type `lists`: instant by default, a daily digest line or
off as the person sets it; quiet hours hold it till morning; mail's one-click
unsubscribe turns it off). A new list has no subscribers yet: readers find it in `/listy`.

Readers subscribe in the bot (`/listy` shows every list with one button each: pressing it
subscribes or unsubscribes, one step) or by mail to biblioteka@: `listy` lists them,
`zapisz <id>` / `wypisz <id>` (English `subscribe` / `unsubscribe`) changes a
subscription — only from a proven sender (handlers/identity.require_proof), as a
subscription is the person's data.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from handlers import fanout
from handlers.context import ServiceContext
from handlers.identity import require_proof
from handlers.limits import check_all
from handlers.message import InboundMessage, InvalidInput, Reply
from store.models import ListSubscription, Person, ReadingList, ReadingListItem

#: a list's id travels in a Telegram button's callback data (64 bytes, "lists:" before it)
#: and in a mail's subject (`zapisz <id>`): short, plain letters
LIST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,49}")
MAX_ITEMS = 2000
#: lists shown by `/listy` (newest first): a Telegram keyboard takes about a hundred buttons
MAX_SHOWN = 50
CALLBACK = "lists"


@dataclass(frozen=True)
class ItemIn:
    key: str
    title: str
    author: str
    year: int | None
    isbn: str
    note: str


@dataclass(frozen=True)
class ListIn:
    id: str
    title: str
    description: str
    items: tuple[ItemIn, ...]


def _words(text: str) -> str:
    """Lower case, no diacritics (ł has no decomposition: mapped by hand), no punctuation."""
    plain = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L"))
    plain = "".join(c for c in plain if not unicodedata.combining(c)).casefold()
    return " ".join(re.findall(r"[0-9a-z]+", plain))


def item_key(title: str, author: str, isbn: str) -> str:
    """What tells an item seen before from a new one (see the module docstring)."""
    digits = re.sub(r"[^0-9X]", "", isbn.upper())
    if digits:
        return f"isbn:{digits}"
    key = f"ta:{_words(title)}|{_words(author)}"
    # the column holds 200: a longer title is known by its digest
    return key if len(key) <= 200 else f"ta#{hashlib.sha256(key.encode()).hexdigest()}"


def _text(value: Any, where: str, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidInput(where, f"'{where}' must be text")
    text = str(value).strip()
    if required and not text:
        raise InvalidInput(where, f"'{where}' is required")
    return text


def _year(value: Any, where: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        year = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(where, f"'{where}' must be a year") from None
    if isinstance(value, bool) or not 0 < year < 3000:
        raise InvalidInput(where, f"'{where}' must be a year")
    return year


def parse_item(item: Any, where: str) -> ItemIn:
    if not isinstance(item, dict):
        raise InvalidInput(where, f"'{where}' must be an object")
    title = _text(item.get("title"), f"{where}.title", required=True)
    author = _text(item.get("author"), f"{where}.author")
    isbn = _text(item.get("isbn"), f"{where}.isbn")
    note = _text(item.get("note"), f"{where}.note")
    check_all(ReadingListItem, {"title": title, "author": author, "isbn": isbn, "note": note},
              f"{where}.")
    return ItemIn(item_key(title, author, isbn), title, author,
                  _year(item.get("year"), f"{where}.year"), isbn, note)


def parse_list(body: Any, where: str) -> ListIn:
    if not isinstance(body, dict):
        raise InvalidInput(where, f"'{where}' must be an object")
    list_id = _text(body.get("id"), f"{where}.id", required=True)
    if not LIST_ID.fullmatch(list_id):
        raise InvalidInput(f"{where}.id", f"'{where}.id' is 1–50 letters, digits, '.', '_' "
                                          "or '-'")
    title = _text(body.get("title"), f"{where}.title", required=True)
    description = _text(body.get("description"), f"{where}.description")
    check_all(ReadingList, {"title": title}, f"{where}.")
    items = body.get("items", [])
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise InvalidInput(f"{where}.items", f"'{where}.items' must be a list of at most "
                                             f"{MAX_ITEMS}")
    unique: dict[str, ItemIn] = {}
    for n, raw in enumerate(items):
        parsed = parse_item(raw, f"{where}.items[{n}]")
        unique.setdefault(parsed.key, parsed)  # the same book twice: the first one
    return ListIn(list_id, title, description, tuple(unique.values()))


def parse_batch(body: dict[str, Any]) -> list[ListIn]:
    lists = body.get("lists")
    if not isinstance(lists, list):
        raise InvalidInput("lists", "'lists' must be a list")
    return list({x.id: x for x in (parse_list(raw, f"lists[{n}]")
                                   for n, raw in enumerate(lists))}.values())


# --- the hook -----------------------------------------------------------------------------


def _item_fields(item: ItemIn, position: int) -> dict[str, Any]:
    return {"title": item.title, "author": item.author, "year": item.year, "isbn": item.isbn,
            "note": item.note, "position": position}


async def _apply_list(ctx: ServiceContext, given: ListIn) -> dict[str, int]:
    """Store one list as sent and tell its subscribers of the items new to it."""
    now = ctx.clock.now()
    row = await ReadingList.get_or_none(id=given.id)
    if row is None:
        await ReadingList.create(id=given.id, title=given.title,
                                 description=given.description, updated_at=now)
    elif (row.title, row.description) != (given.title, given.description):
        await ReadingList.filter(id=given.id).update(title=given.title,
                                                     description=given.description,
                                                     updated_at=now)
    held = {i.key: i for i in await ReadingListItem.filter(list_id=given.id)}
    sent = {item.key for item in given.items}
    gone = [i.id for k, i in held.items() if k not in sent]
    if gone:
        await ReadingListItem.filter(id__in=gone).delete()
    new = []
    for position, item in enumerate(given.items):
        fields = _item_fields(item, position)
        old = held.get(item.key)
        if old is None:
            new.append(ReadingListItem(list_id=given.id, key=item.key, added_at=now, **fields))
        elif any(getattr(old, name) != value for name, value in fields.items()):
            await ReadingListItem.filter(id=old.id).update(**fields)
    if new:
        await ReadingListItem.bulk_create(new, batch_size=500)
    told = await _tell_subscribers(ctx, given, new) if new else 0
    return {"created": int(row is None), "items_added": len(new), "items_removed": len(gone),
            "told": told}


async def _tell_subscribers(ctx: ServiceContext, given: ListIn,
                            new: list[ReadingListItem]) -> int:
    """One message per subscriber with the new items; its key names the items, so the
    same news sent twice (a retried hook) is one message."""
    people = await Person.filter(id__in=await ListSubscription.filter(
        list_id=given.id).values_list("person_id", flat=True))
    if not people:
        return 0
    digest = hashlib.sha256("\n".join(sorted(i.key for i in new)).encode()).hexdigest()[:16]
    outcome = await fanout.fan_out(ctx, people, fanout.Notice(
        kind="lists", template="reading_list_new", mailbox="biblioteka",
        key=f"reading-list:{given.id}:{digest}", cause="reading-list",
        context={"list": {"id": given.id, "title": given.title}, "count": len(new),
                 "items": [{"title": i.title, "author": i.author, "year": i.year,
                            "note": i.note} for i in new]}), ctx.clock.now())
    return outcome.queued + outcome.digested


async def apply_batches(ctx: ServiceContext, batches: list[list[ListIn]]
                        ) -> list[dict[str, Any]]:
    """Apply each request's lists, one answer each. Call inside a transaction (the
    hook's): the lists, their items and the messages about them are written together."""
    answers = []
    for batch in batches:
        answer = {"accepted": len(batch), "created": 0, "items_added": 0, "items_removed": 0,
                  "told": 0}
        for given in batch:
            for name, value in (await _apply_list(ctx, given)).items():
                answer[name] += value
        answers.append(answer)
    return answers


# --- subscribing --------------------------------------------------------------------------


async def overview(person: Person | None) -> list[dict[str, Any]]:
    """The lists the person follows and the newest others (MAX_SHOWN in all), each with
    its size and whether the person follows it — so that what one follows can always be
    left in one press."""
    mine = set(await ListSubscription.filter(person_id=person.id).values_list(
        "list_id", flat=True)) if person is not None else set()
    lists = await ReadingList.filter(id__in=mine).order_by("-updated_at", "id") if mine else []
    lists += await ReadingList.exclude(id__in=mine or [""]).order_by(
        "-updated_at", "id").limit(max(MAX_SHOWN - len(lists), 0))
    counts: dict[str, int] = {}
    for list_id in await ReadingListItem.filter(
            list_id__in=[x.id for x in lists]).values_list("list_id", flat=True):
        counts[str(list_id)] = counts.get(str(list_id), 0) + 1
    return [{"id": x.id, "title": x.title, "description": x.description,
             "count": counts.get(x.id, 0), "subscribed": x.id in mine} for x in lists]


def buttons(lists: list[dict[str, Any]]) -> list[list[tuple[str, str]]]:
    """One button a list: a tick on what the person follows (pressing unsubscribes), a
    plus on the rest. Signs, not words: the same in both languages."""
    return [[(f"{'✅' if x['subscribed'] else '➕'} {x['title']}"[:60], f"{CALLBACK}:{x['id']}")]
            for x in lists]


async def handle_command(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                         ) -> list[Reply]:
    lists = await overview(person)
    return [Reply("lists_overview", {"lists": lists}, buttons=buttons(lists) or None)]


async def _set(ctx: ServiceContext, person: Person, list_id: str, on: bool | None
               ) -> Reply:
    """Subscribe (`on` True), unsubscribe (False) or toggle (None); the answer says which."""
    found = await ReadingList.get_or_none(id=list_id) if LIST_ID.fullmatch(list_id) else None
    if found is None:
        return Reply("lists_unknown", {"id": list_id[:50]})
    held = await ListSubscription.filter(person_id=person.id, list_id=list_id).exists()
    want = (not held) if on is None else on
    if want and not held:
        await ListSubscription.create(person_id=person.id, list_id=list_id,
                                      created_at=ctx.clock.now())
    elif not want and held:
        await ListSubscription.filter(person_id=person.id, list_id=list_id).delete()
    return Reply("lists_changed", {"title": found.title, "id": found.id, "subscribed": want})


async def handle_callback(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                          ) -> list[Reply]:
    """A list's button: one press subscribes or unsubscribes; the buttons come back
    redrawn with the answer, to press again."""
    if person is None:
        return [Reply("not_linked", {})]
    reply = await _set(ctx, person, (msg.callback or "").partition(":")[2], None)
    reply.buttons = buttons(await overview(person)) or None
    return [reply]


SUBSCRIBE_WORDS = ("zapisz", "subscribe")
UNSUBSCRIBE_WORDS = ("wypisz", "unsubscribe")
LIST_WORDS = ("listy", "lists")


async def handle_email(ctx: ServiceContext, msg: InboundMessage, person: Person | None
                       ) -> list[Reply] | None:
    """biblioteka@: `listy`, `zapisz <id>`, `wypisz <id>` as the first word of the subject
    (after any "Re:") or of the first line; None when the mail is about something else."""
    first_line = next((line for line in msg.text.splitlines() if line.strip()), "")
    for place in (msg.subject or "", first_line):
        words = re.sub(r"^\s*((re|odp|aw|fwd?)\s*:\s*)*", "", place, flags=re.I).split()
        if not words:
            continue
        word = words[0].lower()
        if word in LIST_WORDS:
            return [Reply("lists_overview", {"lists": await overview(person)})]
        if word in SUBSCRIBE_WORDS + UNSUBSCRIBE_WORDS:
            if person is None:
                return [Reply("lists_unknown_sender", {})]
            require_proof(msg)  # a subscription is the person's data: only a proven sender
            if len(words) < 2:
                return [Reply("lists_overview", {"lists": await overview(person)})]
            return [await _set(ctx, person, words[1], word in SUBSCRIBE_WORDS)]
    return None
