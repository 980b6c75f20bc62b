"""Secrets the gateway makes once and keeps in the store, shared by every process.

Without `EMIL_SIGNING_SECRET`, each process used to invent its own key, so a link signed
by one process failed (404) in another, in the worker process, or after a restart. The
first process to start now writes a random secret here, and everyone reads that one.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from store.models import StoredSecret


async def stored_secret(name: str, now: datetime) -> str:
    """The secret called `name`, created (race-safely) on first use."""
    found = await StoredSecret.get_or_none(name=name)
    if found is not None:
        return found.value
    await StoredSecret.bulk_create(
        [StoredSecret(name=name, value=secrets.token_hex(32), created_at=now)],
        ignore_conflicts=True)  # two processes starting together: one value wins
    return (await StoredSecret.get(name=name)).value
