"""Inserting new model instances at the ORM's lowest cost."""

from __future__ import annotations

from collections.abc import Sequence

from tortoise.models import Model


async def insert_rows(rows: Sequence[Model]) -> None:
    """Insert new instances of one model. One row takes the model's prepared INSERT
    (`save()`); several take one multi-row statement (`bulk_create`), which Tortoise
    builds anew on every call — for a single row that building costs more than the
    insert itself (measured in bench/smtp_inbound.py, where every mail is one case)."""
    if len(rows) == 1:
        await rows[0].save(force_create=True)
    elif rows:
        await type(rows[0]).bulk_create(list(rows))
