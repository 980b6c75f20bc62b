"""Telling a store that is down for a moment from a request that is wrong.

A SQLite write lock held past the busy timeout ("database is locked"), PostgreSQL
restarting or terminating our connections, a pool that cannot connect: all of these pass,
and whoever met them should answer "try again later" (SMTP 451, HTTP 503) or, in a
background part, back off and go on. Anything else (a value too long for its column, a
broken constraint) is a fault of the input or of the code, and retrying it changes nothing.
"""

from __future__ import annotations

import sqlite3

from tortoise.exceptions import DBConnectionError, OperationalError, ValidationError

try:  # asyncpg is there whenever PostgreSQL is used (tortoise-orm[asyncpg])
    import asyncpg

    _PG_TRANSIENT: tuple[type[BaseException], ...] = (
        asyncpg.exceptions.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, terminated backend
        asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    )
    #: asyncpg's client-side errors: "connection is closed" passes, but so does nothing
    #: else of this kind — "the number of query arguments cannot exceed 32767" answered
    #: 503 to a register that then retried the same call for ever
    _PG_INTERFACE: tuple[type[BaseException], ...] = (asyncpg.exceptions.InterfaceError,)
    _PG_DATA_ERROR: tuple[type[BaseException], ...] = (asyncpg.exceptions.DataError,)
except ImportError:  # pragma: no cover
    _PG_TRANSIENT = _PG_DATA_ERROR = _PG_INTERFACE = ()

#: sqlite3's words for a lock or a busy database (sqlite.org/rescode.html: SQLITE_BUSY,
#: SQLITE_LOCKED)
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")


def is_transient(error: BaseException) -> bool:
    """True if `error` (or what it wraps) says the store is unavailable for now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (DBConnectionError, ConnectionError, TimeoutError)):
            return True
        if _PG_TRANSIENT and isinstance(current, _PG_TRANSIENT):
            return True
        if _PG_INTERFACE and isinstance(current, _PG_INTERFACE) and _connection_gone(current):
            return True
        if isinstance(current, (OperationalError, sqlite3.OperationalError)):
            if any(words in str(current).lower() for words in _SQLITE_BUSY):
                return True
            if _connection_gone(current):
                return True
        current = current.__cause__ or current.__context__
    return False


def _connection_gone(error: BaseException) -> bool:
    """The error's own words say the connection is closed, lost or refused."""
    text = str(error).lower()
    return "connection" in text and ("closed" in text or "lost" in text or "refused" in text)


def is_input_fault(error: BaseException) -> bool:
    """True if the database refused a value itself (PostgreSQL's "value too long for
    type character varying", a number out of range): the input's fault, not ours."""
    current: BaseException | None = error
    for _ in range(5):
        if current is None:
            break
        if isinstance(current, (ValidationError, OverflowError)):
            # Tortoise checked a value against its field, or a number was past what the
            # database driver can bind (sqlite3: 64 bits)
            return True
        if _PG_DATA_ERROR and isinstance(current, _PG_DATA_ERROR):
            return True
        current = current.__cause__
    return False
