"""The library catalogue: `/szukaj` (`/katalog`, `/search`) in the bot and `szukaj …` to
biblioteka@, answered from the library's SRU server.

What the person typed becomes CQL here (`cql`), never by pasting their text into a
query: every term is quoted and CQL's special characters escaped (CQL 1.2, "Escaping":
a backslash escapes `"`, `\\`, and the masking characters `*`, `?`, `^`). `autor:`,
`tytuł:`/`tytul:`, `temat:` and `isbn:` name an index up to the next such word; a bare
ISBN is searched as one; quoted phrases stay phrases (`=`), loose words must all occur
(`all`). Indexes are the Dublin Core and Bath context sets SRU servers in Poland (MAK+,
SOWA, Koha's Zebra) understand: dc.title, dc.creator, dc.subject, bath.isbn.

The search itself is network I/O, so it never runs inside the inbox's transaction: the
inbox calls `prepare` for the whole batch first (concurrently, each bounded by
`ctx.catalogue_timeout`), which leaves the answer on `msg.found`; the handler only
renders it. A slow or dead catalogue costs a batch at most that timeout and the reader
gets a polite "the catalogue does not answer" — the outbox, HTTP and SMTP go on meanwhile.

The client is `ctx.catalogue` (a `Catalogue`: gateway/sru.py speaks SRU; tests point it
at a double); None when EMIL_CATALOGUE_SRU_URL is unset.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from handlers import i18n
from handlers.context import ServiceContext
from handlers.message import InboundMessage, Reply
from handlers.text import whole_number

log = logging.getLogger(__name__)

COMMANDS = ("szukaj", "katalog", "search")
#: the button prefix: "kat:<first record>:<the query as typed>"
PREFIX = "kat"
#: words that make a mail to biblioteka@ a search
MAIL_WORDS = ("szukaj", "search")
#: results per page
PAGE = 5
MAIL_PAGE = 10
#: Telegram's limit on callback data (Bot API, InlineKeyboardButton.callback_data)
CALLBACK_BYTES = 64
#: subject buttons under one result
SUBJECT_BUTTONS = 3
#: the paging button's label, by language
NEXT = {"pl": "następne ▶", "en": "next ▶"}

#: the typed field words and the CQL index each searches
FIELDS = {"autor": "dc.creator", "author": "dc.creator", "tytuł": "dc.title",
          "tytul": "dc.title", "title": "dc.title", "temat": "dc.subject",
          "subject": "dc.subject", "isbn": "bath.isbn"}
_FIELD_RE = re.compile(r"\b(" + "|".join(FIELDS) + r"):", re.IGNORECASE)
_ISBN_RE = re.compile(r"^(97[89])?[\d-]{9,13}[\dXx]$")
#: the longest query searched (a title and an author with room to spare): longer is
#: answered with the usage — not sent to the catalogue, nor echoed back by mail
MAX_QUERY = 200
#: the furthest record a page may start at
MAX_START = 100_000
_MORE_RE = re.compile(r"\s+(?:więcej|wiecej|more)\s+(\d{1,4})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Record:
    """One catalogue record, already read out of MARC (gateway/sru.py says which fields)."""

    title: str
    author: str | None = None
    year: str | None = None
    call_number: str | None = None
    #: "available", "on_loan", or None when the record says nothing about copies
    availability: str | None = None
    subjects: tuple[str, ...] = ()


@dataclass
class Found:
    total: int
    records: list[Record] = field(default_factory=list)


class CatalogueError(Exception):
    """The catalogue answered, but not with results (an SRU diagnostic, a bad page)."""


class Catalogue(Protocol):
    async def search(self, cql: str, start: int, count: int) -> Found:
        """Records `start`…`start+count-1` (1-based, as SRU's startRecord) of a CQL query."""
        ...


@dataclass
class Search:
    """What one message asks for, and what the catalogue said."""

    query: str
    start: int = 1
    found: Found | None = None
    #: "off" (not connected), "away" (slow or down), "bad" (nothing to search for)
    problem: str | None = None


def escape(term: str) -> str:
    """A term safe inside CQL double quotes."""
    return re.sub(r'([\\"*?^])', r"\\\1", term)


def cql(query: str) -> str | None:
    """The CQL for what the person typed, or None when nothing is left to search for."""
    clauses: list[str] = []
    parts = _FIELD_RE.split(query)
    # split gives [bare, field, text, field, text, …]
    segments = [(None, parts[0])] + [(parts[i].lower(), parts[i + 1])
                                     for i in range(1, len(parts) - 1, 2)]
    for name, text in segments:
        index = FIELDS.get(name or "", "cql.serverChoice")
        phrases = re.findall(r'"([^"]*)"', text)
        words = re.sub(r'"[^"]*"', " ", text).replace('"', " ").split()
        for phrase in filter(None, (p.strip() for p in phrases)):
            clauses.append(f'{index} = "{escape(phrase)}"')
        if index == "cql.serverChoice":
            isbns = [w for w in words if _ISBN_RE.match(w)]
            words = [w for w in words if w not in isbns]
            clauses += [f'bath.isbn = "{escape(w.replace("-", ""))}"' for w in isbns]
        elif index == "bath.isbn":
            words = [w.replace("-", "") for w in words]
        if words:
            clauses.append(f'{index} all "{escape(" ".join(words))}"')
    return " and ".join(clauses) or None


def wanted(msg: InboundMessage) -> Search | None:
    """The search a message asks for, if it is one (command, button or mail); a group's
    commands are not answered (handlers/router.py), so not searched either."""
    if msg.mailbox == "biblioteka":
        return _from_mail(msg)
    if not msg.private:
        return None
    if msg.callback is not None:
        prefix, _, rest = msg.callback.partition(":")
        if prefix != PREFIX:
            return None
        start, _, query = rest.partition(":")
        # ASCII digits only, and bounded (review of #20: "²" passed isdigit() and
        # int() raised, jamming the inbox on a forged button)
        return Search(query, whole_number(start, low=1, high=MAX_START) or 1)
    if msg.command in COMMANDS:
        return Search(" ".join(msg.args))
    return None


def _from_mail(msg: InboundMessage) -> Search | None:
    """`szukaj …` in the subject or the first line; `… więcej 11` asks for a later page
    (the subject our answer carries, so that replying to it is the "więcej")."""
    first_line = next((line for line in msg.text.splitlines() if line.strip()), "")
    for line in (msg.subject or "", first_line):
        match = re.search(r"\b(?:" + "|".join(MAIL_WORDS) + r")\b:?(.*)$", line, re.IGNORECASE)
        if match:
            query = match.group(1).strip()
            more = _MORE_RE.search(" " + query)
            if more:
                return Search(_MORE_RE.sub("", " " + query).strip(),
                              whole_number(more.group(1), low=1, high=MAX_START) or 1)
            return Search(query)
    return None


async def prepare(ctx: ServiceContext, messages: list[InboundMessage]) -> None:
    """Run the searches a batch asks for, concurrently and before its transaction; each
    message's answer is left on `msg.found`."""
    asks = []
    for msg in messages:
        try:
            search = wanted(msg)
        except Exception:  # noqa: BLE001 - a message this step cannot read must not jam the inbox
            log.exception("catalogue: could not read the search of a message")
            continue
        if search is not None:
            asks.append((msg, search))
    if asks:
        await asyncio.gather(*(_run(ctx, msg, search) for msg, search in asks))


async def _run(ctx: ServiceContext, msg: InboundMessage, search: Search) -> None:
    msg.found = search
    query = cql(search.query) if len(search.query) <= MAX_QUERY else None
    if ctx.catalogue is None:
        search.problem = "off"
    elif query is None:  # nothing to search for, or more than a person writes
        search.problem = "bad"
    else:
        count = MAIL_PAGE if msg.mailbox else PAGE
        try:
            search.found = await asyncio.wait_for(
                ctx.catalogue.search(query, search.start, count), ctx.catalogue_timeout)
        except (asyncio.TimeoutError, OSError, CatalogueError) as error:
            log.warning("catalogue search failed: %s", type(error).__name__)
            search.problem = "away"
        except Exception:
            log.exception("catalogue search failed")
            search.problem = "away"


async def _answer(ctx: ServiceContext, msg: InboundMessage, person: Any) -> list[Reply]:
    search = msg.found if isinstance(msg.found, Search) else None
    if search is None:  # not prepared by the inbox (a direct call): search now
        await prepare(ctx, [msg])
        search = msg.found
    assert isinstance(search, Search)
    if search.problem == "off":
        return [Reply("catalogue_off", {})]
    if search.problem == "bad":
        return [Reply("catalogue_usage", {})]
    if search.problem == "away" or search.found is None:
        return [Reply("catalogue_away", {"query": search.query})]
    lang = i18n.language(person.language if person else msg.language_hint)
    return [_results(msg, search, search.found, lang)]


def _results(msg: InboundMessage, search: Search, found: Found, lang: str) -> Reply:
    count = MAIL_PAGE if msg.mailbox else PAGE
    after = search.start + len(found.records)
    more = after if found.records and after <= found.total else None
    context: dict[str, Any] = {
        "query": search.query, "total": found.total, "first": search.start,
        "last": after - 1, "records": found.records, "more": more, "narrow": False}
    if not found.records:
        return Reply("catalogue_none", context)
    buttons: list[list[tuple[str, str]]] = []
    seen: set[str] = set()
    for record in found.records:
        for subject in record.subjects[:SUBJECT_BUTTONS]:
            if subject not in seen and len(seen) < count:
                seen.add(subject)
                buttons.append([(f"🔎 {subject}", subject_button(subject))])
    if more is not None:
        data = f"{PREFIX}:{more}:{search.query}"
        if len(data.encode()) <= CALLBACK_BYTES:
            buttons.append([(NEXT[lang], data)])
        else:
            context["narrow"] = True  # too long to carry in a button: ask for fewer words
    return Reply("catalogue_results", context, buttons=buttons or None)


def subject_button(subject: str) -> str:
    """Callback data searching one subject heading by its words (`all`: servers index a
    heading's subdivisions differently, so not as one phrase); a heading too long for
    Telegram's 64 bytes keeps the whole words that fit."""
    head = f"{PREFIX}:1:temat:"
    words: list[str] = []
    for word in subject.replace('"', " ").replace("—", " ").split():
        if len(f"{head}{' '.join(words + [word])}".encode()) > CALLBACK_BYTES:
            break
        words.append(word)
    return f"{head}{' '.join(words)}"


async def handle_command(ctx: ServiceContext, msg: InboundMessage, person: Any) -> list[Reply]:
    """`/szukaj …`: the first page; with no words, how to search."""
    if not msg.args:
        return [Reply("catalogue_usage", {})]
    return await _answer(ctx, msg, person)


async def handle_callback(ctx: ServiceContext, msg: InboundMessage, person: Any
                          ) -> list[Reply]:
    """A "następne" or a subject button."""
    return await _answer(ctx, msg, person)


async def handle_email(ctx: ServiceContext, msg: InboundMessage, person: Any) -> list[Reply]:
    """`szukaj …` to biblioteka@ (handlers/library.handle_email sends it here)."""
    return await _answer(ctx, msg, person)
