"""Rows written by their outside id, for many batches in one transaction.

The register and the library send records with ids of their own: a new id is inserted,
a known id with other content is updated, a known id with the same content changes
nothing. Concurrent hook requests share one transaction (store/batcher.py); reading and
inserting their rows one request at a time cost three statements per request, each
built anew by the ORM — most of a hook's time. An :class:`Upserts` reads the existing
rows of every batch in the group with one query and inserts the new ones with one
statement, while each batch is still told apart (`put` answers in order, as if the
batches had been applied one after another: a later batch sees an earlier one's row).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from tortoise.models import Model

from store.rows import insert_rows, read_in

M = TypeVar("M", bound=Model)

Kind = Literal["created", "changed", "unchanged"]


@dataclass
class Put(Generic[M]):
    kind: Kind
    #: the row as it is now (a new one is inserted by :meth:`Upserts.write`)
    row: M


class Upserts(Generic[M]):
    """One model's rows by id; call :meth:`write` once every batch has been put."""

    def __init__(self, model: type[M], existing: dict[str, M], now: datetime) -> None:
        self._model = model
        self._rows = existing
        self._now = now
        self._fresh: dict[str, M] = {}
        self._dirty: dict[str, set[str]] = {}  # stored row id → fields to write
        self._counts = dict.fromkeys(("created", "changed", "unchanged"), 0)

    @classmethod
    async def read(cls, model: type[M], ids: Iterable[str], now: datetime) -> Upserts[M]:
        rows = await read_in(set(ids), lambda part: model.filter(id__in=part))
        return cls(model, {row.pk: row for row in rows}, now)

    def put(self, row_id: str, fields: dict[str, Any], also: dict[str, Any] | None = None
            ) -> Put[M]:
        """Insert or change the row `row_id` to have `fields` (and `updated_at` now);
        `also` is written with them but does not count as a change by itself."""
        put = self._put(row_id, fields, also or {})
        self._counts[put.kind] += 1
        return put

    def _put(self, row_id: str, fields: dict[str, Any], also: dict[str, Any]) -> Put[M]:
        row = self._rows.get(row_id)
        if row is None:
            row = self._model(id=row_id, updated_at=self._now, **fields, **also)
            self._rows[row_id] = self._fresh[row_id] = row
            return Put("created", row)
        if all(getattr(row, name) == value for name, value in fields.items()):
            return Put("unchanged", row)
        self.amend(row_id, updated_at=self._now, **fields, **also)
        return Put("changed", row)

    def tally(self, changed: str) -> dict[str, int]:
        """How many rows the puts since the last tally created, changed and left alone —
        one batch's answer, with `changed` as that feed calls it ("corrected",
        "updated")."""
        counts, self._counts = self._counts, dict.fromkeys(self._counts, 0)
        return {"created": counts["created"], changed: counts["changed"],
                "unchanged": counts["unchanged"]}

    def amend(self, row_id: str, **fields: Any) -> None:
        """More fields for a row put in this group (a revision, a reset link)."""
        row = self._rows[row_id]
        for name, value in fields.items():
            setattr(row, name, value)
        if row_id not in self._fresh:
            self._dirty.setdefault(row_id, set()).update(fields)

    async def write(self) -> None:
        """Insert the new rows with one statement; update each changed stored row."""
        await insert_rows(list(self._fresh.values()))
        for row_id, names in self._dirty.items():
            row = self._rows[row_id]
            await self._model.filter(id=row_id).update(**{n: getattr(row, n) for n in names})
        self._fresh.clear()
        self._dirty.clear()
