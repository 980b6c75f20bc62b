"""Hand-written SQL for the few statements the ORM cannot say in one round trip.

Statements are written once with `?` placeholders; `sql()` gives the text the open
connection's dialect expects (`$1, $2…` for asyncpg on PostgreSQL). Everything else in
the store goes through Tortoise.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

M = TypeVar("M", bound=Model)


def on_postgres(db: BaseDBAsyncClient) -> bool:
    """Whether an open connection speaks PostgreSQL (`store.db.is_postgres` asks a URL)."""
    return db.capabilities.dialect == "postgres"


def sql(db: BaseDBAsyncClient, text: str) -> str:
    """`text` in the dialect of `db`: `?` placeholders become `$n` on PostgreSQL."""
    return _numbered(text) if on_postgres(db) else text


@functools.lru_cache(maxsize=64)
def _numbered(text: str) -> str:
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", text)


def as_models(model: type[M], rows: Iterable[dict[str, Any]]) -> list[M]:
    """Model instances from rows a `RETURNING *` gave back, converted as Tortoise converts
    its own query results."""
    return [model._init_from_db(**row) for row in rows]
