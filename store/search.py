"""Full-text search over cases: subjects, bodies and the whole correspondence.

Each searchable text of a case (its subject and body, every message, reply and note) is
one row of the index: an FTS5 table on SQLite, a table with a GIN index over
`to_tsvector('simple', …)` on PostgreSQL. Texts are folded before they are indexed and
queries the same way — lower case, Polish letters without their diacritics (`ł` has no
Unicode decomposition, so it is mapped by hand) — so "Kościuszki", "kosciuszki" and
"KOŚCIUSZKI" find each other on both databases. Words match by prefix ("dziur" finds
"dziura"), all words must match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from store.sql import on_postgres, sql

_POLISH = str.maketrans("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ", "acelnoszzACELNOSZZ")
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 8

SQLITE_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS case_search USING fts5("
    "case_id UNINDEXED, content, tokenize = 'unicode61 remove_diacritics 2')"
)
POSTGRES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS case_search (id BIGSERIAL PRIMARY KEY, "
    "case_id VARCHAR(16) NOT NULL, content TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS case_search_fts ON case_search "
    "USING GIN (to_tsvector('simple', content))",
    "CREATE INDEX IF NOT EXISTS case_search_case ON case_search (case_id)",
)


def fold(text: str) -> str:
    """Lower case, without diacritics: the form both the index and queries use."""
    text = text.translate(_POLISH)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def terms(query: str) -> list[str]:
    """The words of a query, folded (punctuation and operators dropped: a query is never
    FTS syntax, so nobody can write one that errors or scans)."""
    return _WORD.findall(fold(query))[:MAX_TERMS]


async def create_schema(db: BaseDBAsyncClient) -> None:
    if on_postgres(db):
        for statement in POSTGRES_SCHEMA:
            await db.execute_script(statement)
    else:
        await db.execute_script(SQLITE_SCHEMA)


def _db() -> BaseDBAsyncClient:
    return connections.get("default")


async def index(texts: Iterable[tuple[str, str]]) -> None:
    """Add (case number, text) pairs to the index, inside the caller's transaction."""
    rows = [(number, fold(text)) for number, text in texts if text and text.strip()]
    if not rows:
        return
    db = _db()
    await db.execute_many(sql(db, "INSERT INTO case_search (case_id, content) VALUES (?, ?)"),
                          [list(r) for r in rows])


async def forget(number: str) -> None:
    """Drop a case's texts from the index (erasure)."""
    db = _db()
    await db.execute_query(sql(db, "DELETE FROM case_search WHERE case_id = ?"), [number])


async def matching(query: str, limit: int = 200) -> list[str]:
    """Numbers of the cases (newest first) whose texts together contain every word of
    `query` as a prefix: one word may be in the subject, another in a reply."""
    words = terms(query)
    if not words:
        return []
    db = _db()
    if on_postgres(db):
        one = ("SELECT case_id FROM case_search WHERE to_tsvector('simple', content) "
               "@@ to_tsquery('simple', ?)")
        params: list[object] = [f"{w}:*" for w in words]
    else:
        one = "SELECT case_id FROM case_search WHERE case_search MATCH ?"
        params = [f'"{w}"*' for w in words]
    statement = " INTERSECT ".join([one] * len(words))
    _, rows = await db.execute_query(
        sql(db, f"SELECT case_id FROM ({statement}) AS found ORDER BY case_id DESC LIMIT ?"),
        [*params, limit])
    return [r["case_id"] for r in rows]
