"""Full-text search over cases: subjects, bodies and the whole correspondence.

Each case is one document of the index — its subject and body, then every message,
reply and note appended as they come: an FTS5 table on SQLite, a table with a stored
`tsvector` and a GIN index on PostgreSQL. Texts are folded before they are indexed and
queries the same way — lower case, Polish letters without their diacritics (`ł` has no
Unicode decomposition, so it is mapped by hand) — so "Kościuszki", "kosciuszki" and
"KOŚCIUSZKI" find each other on both databases. Words of `MIN_PREFIX` letters or more
match by prefix ("dziur" finds "dziura"), shorter ones ("w", "ul", "5") whole; at most
`MAX_TERMS` words count, and every one must be in the case, in any of its texts. The
newest cases come first (the document's key is the case number's year and serial).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from store.sql import on_postgres, sql

log = logging.getLogger(__name__)

_POLISH = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")
_WORD = re.compile(r"\w+", re.UNICODE)
#: words of a query beyond these are dropped: each word that matches as a prefix walks
#: every document holding any word it begins (20–170 ms for a common one at 100,000
#: cases of bench/case_queue.py's text, issue #18), and a clerk narrows with a few words
MAX_TERMS = 6
#: shorter words match whole words only. A one- or two-letter prefix begins most words
#: of most documents (eight one-letter words: 590 ms at 100,000 cases, with every other
#: use of SQLite's connection waiting), while the word itself is found in under 1 ms;
#: and Polish means its short words ("w", "ul.", "nr", a house number) as they are
MIN_PREFIX = 3
#: PostgreSQL: how many of the newest documents are tried first (see _matching_postgres)
RECENT_WINDOW = 5000
#: pages (of FTS5's ~4 KB) one step of the index's merge writes (`purge`), then commits:
#: ~20 ms on 2 cores with a synthetic index of 20,000 documents (60 ms with both busy)
MERGE_PAGES = 200
#: `purge` takes at most this many times the steps its merge needs (the index's pages
#: when it begins, `MERGE_PAGES` a step): the rest is room for the new segments of
#: writers that keep coming between the steps, which the steps merge as well
MERGE_ROOM = 4

SQLITE_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS case_search USING fts5("
    "case_id UNINDEXED, content, tokenize = 'unicode61 remove_diacritics 2')"
)
POSTGRES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS case_search (id BIGINT PRIMARY KEY, "
    "case_id VARCHAR(16) NOT NULL, content TEXT NOT NULL, "
    "doc TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED)",
    "CREATE INDEX IF NOT EXISTS case_search_fts ON case_search USING GIN (doc)",
)


def key_of(number: str) -> int:
    """A case's row in the index: UM-2026-000123 → 2026000123, so newer cases sort later
    and one case is one row (its texts appended as they come)."""
    _, year, serial = number.split("-")
    return int(year) * 1_000_000 + int(serial)


def fold(text: str) -> str:
    """Lower case, without diacritics: the form both the index and queries use."""
    text = text.translate(_POLISH)
    if text.isascii():  # Polish text usually is by now: nothing left to decompose
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def terms(query: str) -> list[str]:
    """The words of a query, folded, each once, at most `MAX_TERMS` (punctuation and
    operators dropped: a query is never FTS syntax, so nobody can write one that errors
    or scans)."""
    return list(dict.fromkeys(_WORD.findall(fold(query))))[:MAX_TERMS]


def fts_expression(words: list[str]) -> str:
    """FTS5's MATCH for `terms`: every word, as a prefix from `MIN_PREFIX` letters."""
    return " ".join(f'"{w}"*' if len(w) >= MIN_PREFIX else f'"{w}"' for w in words)


def tsquery(words: list[str]) -> str:
    """PostgreSQL's `to_tsquery` text for `terms`, by the same rule as `fts_expression`."""
    return " & ".join(f"{w}:*" if len(w) >= MIN_PREFIX else w for w in words)


async def create_schema(db: BaseDBAsyncClient) -> None:
    if on_postgres(db):
        for statement in POSTGRES_SCHEMA:
            await db.execute_script(statement)
    else:
        await db.execute_script(SQLITE_SCHEMA)


def _db() -> BaseDBAsyncClient:
    return connections.get("default")


async def index(texts: Iterable[tuple[str, str]], *, new_cases: bool = False) -> None:
    """Append (case number, text) pairs to their cases' documents, inside the caller's
    transaction. One document per case, so every word of a query may come from a
    different message of the same case. `new_cases`: the cases were created in this
    transaction and have no document yet (the case endpoint's path reads nothing).

    No statement here reads a document into Python to write it back: two writers that
    meet (issue #18: a note posted while the resident posts) each append to what the
    document holds when their statement runs, so neither loses the other's words."""
    added: dict[str, list[str]] = {}
    for number, text in texts:
        if text and text.strip():
            added.setdefault(number, []).append(fold(text))
    if not added:
        return
    db = _db()
    rows = [(key_of(number), number, " ".join(parts)) for number, parts in added.items()]
    if on_postgres(db):
        # ON CONFLICT DO UPDATE appends to the row's latest committed version under its
        # row lock: a second writer waits for the first and appends after it (and one
        # inserting the same new document at the same moment takes the update path)
        await db.execute_many(sql(db, (
            "INSERT INTO case_search (id, case_id, content) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET content = case_search.content || ' ' || "
            "EXCLUDED.content")), [list(r) for r in rows])
        return
    if new_cases:
        await db.execute_many("INSERT INTO case_search (rowid, case_id, content) "
                              "VALUES (?, ?, ?)", [list(r) for r in rows])
        return
    # FTS5 tables take no UPSERT: an empty document where the case has none yet, then
    # the text appended in place (each statement runs under SQLite's write lock)
    await db.execute_many("INSERT INTO case_search (rowid, case_id, content) SELECT ?, ?, '' "
                          "WHERE NOT EXISTS (SELECT 1 FROM case_search WHERE rowid = ?)",
                          [[key, number, key] for key, number, _ in rows])
    await db.execute_many("UPDATE case_search SET content = ltrim(content || ' ' || ?) "
                          "WHERE rowid = ?", [[text, key] for key, _, text in rows])


async def forget(numbers: list[str]) -> None:
    """Drop these cases' documents from the index (erasure, retention), in one statement."""
    if not numbers:
        return
    db = _db()
    column = "id" if on_postgres(db) else "rowid"
    marks = ",".join("?" * len(numbers))
    await db.execute_query(sql(db, f"DELETE FROM case_search WHERE {column} IN ({marks})"),
                           [key_of(number) for number in numbers])


async def matching(query: str, limit: int = 200, db: BaseDBAsyncClient | None = None
                   ) -> list[str]:
    """Numbers of the newest cases (at most `limit`) whose texts together contain every
    word of `query` (as a prefix, but for short words): one word may be in the subject,
    another in a reply. `db`: the connection to read on (the console passes the store's
    reader, so a search holds up nothing else)."""
    words = terms(query)
    if not words:
        return []
    db = db or _db()
    if on_postgres(db):
        return await _matching_postgres(db, tsquery(words), limit)
    # FTS5 walks its matches newest first by itself (ORDER BY rowid DESC)
    _, rows = await db.execute_query(
        "SELECT case_id FROM case_search WHERE case_search MATCH ? "
        "ORDER BY rowid DESC LIMIT ?", [fts_expression(words), limit])
    return [r["case_id"] for r in rows]


async def _matching_postgres(db: BaseDBAsyncClient, expression: str, limit: int) -> list[str]:
    """PostgreSQL cannot estimate how common a prefix is (`dziur:*`), so it may walk every
    document newest first for a rare word (measured 126 ms at 100,000 cases) or fetch every
    match to sort them for a common one (254 ms). Both bounded instead: the newest
    `RECENT_WINDOW` documents first — a common word fills the page there — and only if
    they hold fewer than `limit` matches, the index for all matches, which are then few.

    The query is written into the statement, not bound: a prepared statement run a few
    times gets a generic plan blind to the words. Safe: `terms` leaves only \\w
    characters, and `limit` is an int."""
    query = f"to_tsquery('simple', '{expression}')"
    _, rows = await db.execute_query(
        f"SELECT case_id FROM (SELECT id, case_id, doc FROM case_search ORDER BY id DESC "
        f"LIMIT {RECENT_WINDOW}) recent WHERE doc @@ {query} ORDER BY id DESC "
        f"LIMIT {int(limit)}")
    if len(rows) < limit:
        _, rows = await db.execute_query(
            f"WITH found AS MATERIALIZED (SELECT id, case_id FROM case_search "
            f"WHERE doc @@ {query}) SELECT case_id FROM found ORDER BY id DESC "
            f"LIMIT {int(limit)}")
    return [r["case_id"] for r in rows]


async def purge(pages: int | None = None) -> bool:
    """Leave no word of a forgotten document in the index's own storage (erasure,
    retention). Call after the transaction that forgot the documents has committed, never
    inside one. Returns False if the merge was left unfinished (see `MERGE_ROOM`).

    FTS5 does not remove a deleted document's words from its index: it records the
    deletion in a new segment (under the same words) and drops both when the segments
    are merged into the oldest one, so until then they sit in live pages of
    `case_search_data` where no query finds them but a copy of the file shows them.
    'optimize' would merge everything now, but in one statement: ~4 s at 100,000 cases
    with SQLite's one write connection held (review of #18: every API, SMTP and outbox
    write waited and /healthz answered 503). So the merge goes in steps of `pages`, each
    its own transaction, and whatever else writes gets the connection between two steps
    (Tortoise's transaction lock is first come, first served): sqlite.org/fts5.html, "The
    'merge' Command" — a first step with a negative count gathers every segment there is
    into one merge, later steps with a positive count carry that merge on, and a step
    that changes fewer than two rows (`total_changes()`) found nothing left to merge.
    The merged pages are then freed and, with `secure_delete` on (store/db.py), zeroed.
    PostgreSQL keeps a deleted row's words as a dead tuple and in the GIN index until
    VACUUM (store/scrub.py runs it)."""
    db = _db()
    if on_postgres(db):
        return True
    pages = pages or MERGE_PAGES
    _, rows = await db.execute_query("SELECT count(*) AS n FROM case_search_data")
    # A positive 'merge' takes on a level only with `usermerge` segments or more, and
    # prefers a lower level holding more segments than the merge under way has inputs:
    # with the default (4) a step could find "nothing to do" while writers between the
    # steps left two or three new segments and the merge was not done. With 2 (the
    # least) a step does nothing only when no merge is under way and no level holds two
    # segments — the merge begun by the first step, which holds every old segment, done.
    await db.execute_query(
        "INSERT INTO case_search (case_search, rank) VALUES ('usermerge', 2)")
    for step in range(MERGE_ROOM * (int(rows[0]["n"]) // pages + 1) + 10):
        if not await merge_step(-pages if step == 0 else pages):
            return True
    log.warning("search index: the merge was left unfinished (writes kept coming); "
                "the next erasure or retention run carries it on")
    return False


async def merge_step(pages: int) -> bool:
    """One step of FTS5's incremental merge, in a transaction of its own; whether it
    did any work. `total_changes()` is read before and after in the same transaction,
    so no other statement on the connection is counted with it."""
    async with in_transaction() as db:
        _, before = await db.execute_query("SELECT total_changes() AS n")
        await db.execute_query(
            "INSERT INTO case_search (case_search, rank) VALUES ('merge', ?)", [pages])
        _, after = await db.execute_query("SELECT total_changes() AS n")
    return int(after[0]["n"]) - int(before[0]["n"]) >= 2
