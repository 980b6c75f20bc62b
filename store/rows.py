"""Inserting new model instances at the ORM's lowest cost, and reading rows by a long
list of keys."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

T = TypeVar("T")

#: keys per `IN (…)`: a query may carry at most 32,766 parameters on SQLite
#: (sqlite.org/limits.html, SQLITE_MAX_VARIABLE_NUMBER) and 32,767 through asyncpg
#: (PostgreSQL's protocol counts them in 16 bits); a register sending a whole term in one
#: call, or a commit group of many calls, has more keys than that
IN_CHUNK = 5000


def chunks(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def read_in(keys: Iterable[T], query: Callable[[list[T]], Awaitable[Any]]) -> list[Any]:
    """`query(part)` for each part of `keys` (a filter `…__in=part`), the rows joined —
    one statement for up to `IN_CHUNK` keys, as many as needed beyond."""
    found: list[Any] = []
    for part in chunks(keys):
        found.extend(await query(part))
    return found


async def change_in(keys: Iterable[T], statement: Callable[[list[T]], Awaitable[int]]) -> int:
    """`statement(part)` (an update or delete `…__in=part`) for each part of `keys`; how
    many rows it touched in all."""
    return sum([await statement(part) for part in chunks(keys)])


async def delete_found(query: QuerySet[Any], size: int = IN_CHUNK) -> int:
    """Delete the rows `query` finds, `size` at a time by primary key, each part in a
    commit of its own (call outside a transaction): a first run after months (90,000 job
    runs) in one DELETE would hold SQLite's only writer for all of it, and a list of keys
    must stay below the parameter limits. Rows with payloads take a small `size`: with
    `secure_delete` on, SQLite zeroes what it deletes, ~1.5 s for 100 MB. Returns how
    many rows went."""
    model = query.model
    pk = model._meta.pk_attr
    removed = 0
    while True:
        keys = await query.limit(min(size, IN_CHUNK)).values_list(pk, flat=True)
        if not keys:
            return removed
        removed += await model.filter(**{f"{pk}__in": list(keys)}).delete()


async def insert_rows(rows: Sequence[Model]) -> None:
    """Insert new instances of one model. One row takes the model's prepared INSERT
    (`save()`); several take one multi-row statement (`bulk_create`), which Tortoise
    builds anew on every call — for a single row that building costs more than the
    insert itself (measured in bench/smtp_inbound.py, where every mail is one case)."""
    if len(rows) == 1:
        await rows[0].save(force_create=True)
    elif rows:
        await type(rows[0]).bulk_create(list(rows))
