"""`emilanowek import KIND FILE.csv`: people, students, and every feed of the signed hooks
(grades, loans, attendance, remarks, homework, messages).

CSV with a header row (UTF-8, with or without BOM; `,` or `;` — Polish spreadsheets
often export `;`). Every row is checked; bad rows are reported with their line number
and skipped, good rows are applied in chunks, each chunk in one transaction. Rows are
keyed by the source system's ids (or, for people, email then library card), so running
the same file again changes nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from tortoise.transactions import in_transaction

from gateway.hooks import HOOKS
from handlers import grades, library, people
from handlers.context import ServiceContext
from handlers.limits import check_all
from handlers.message import InvalidInput
from handlers.text import clean, whole_number
from store.models import Identity, Person, Student

CHUNK = 1000


@dataclass
class Report:
    kind: str
    rows: int = 0
    applied: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [f"{self.kind}: {self.rows} rows read", f"{self.applied} created or changed",
                 f"{self.unchanged} unchanged", f"{len(self.errors)} with errors"]
        parts += [f"{k}: {v}" for k, v in self.extra.items()]
        return ", ".join(parts)


def read_rows(path: str, max_bytes: int = 64 * 1024 * 1024) -> list[tuple[int, dict[str, str]]]:
    size = Path(path).stat().st_size
    if size > max_bytes:
        raise click.ClickException(f"{path} has {size} bytes; EMIL_IMPORT_MAX_BYTES allows "
                                   f"{max_bytes}")
    text = clean(Path(path).read_text(encoding="utf-8-sig"))  # NUL, bidi: handlers/text.py
    dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", delimiters=",;")
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    return [(n + 2, {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()})
            for n, row in enumerate(reader)]


def _chunks(items: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]


def _parsed(rows: list[tuple[int, dict[str, str]]], parse: Callable[[Any, str], Any],
            report: Report) -> list[Any]:
    """Rows the parser accepts; the others become row-numbered errors."""
    good = []
    for line, row in rows:
        try:
            good.append(parse(row, f"line {line}"))
        except InvalidInput as error:
            report.errors.append(f"line {line}: {error.message}")
    return good


async def import_grades(ctx: ServiceContext, rows: list[tuple[int, dict[str, str]]],
                        report: Report, bar: Callable[[int], None]) -> None:
    parsed = _parsed(rows, grades.parse_item, report)
    unknown: set[str] = set()
    for chunk in _chunks(parsed):
        async with in_transaction():
            [result] = await grades.apply_batches(ctx, [chunk])
        report.applied += result["created"] + result["corrected"]
        report.unchanged += result["unchanged"]
        unknown.update(result["unknown_students"])
        report.extra["notifications"] = report.extra.get("notifications", 0) + result["notifications"]
        bar(len(chunk))
    for student in sorted(unknown):
        report.errors.append(f"unknown student id {student!r}")


async def import_loans(ctx: ServiceContext, rows: list[tuple[int, dict[str, str]]],
                       report: Report, bar: Callable[[int], None]) -> None:
    parsed = _parsed(rows, library.parse_item, report)
    for chunk in _chunks(parsed):
        async with in_transaction():
            [result] = await library.apply_batches(ctx, [chunk])
        report.applied += result["created"] + result["updated"]
        report.unchanged += result["unchanged"]
        bar(len(chunk))


async def import_students(ctx: ServiceContext, rows: list[tuple[int, dict[str, str]]],
                          report: Report, bar: Callable[[int], None]) -> None:
    """Columns: id, name, class, guardians (person ids or emails, `;`-separated)."""
    emails = {g.lower() for _, r in rows for g in _split(r.get("guardians", "")) if "@" in g}
    by_email = dict(await Identity.filter(channel="email", address__in=emails).values_list(
        "address", "person_id"))
    known_ids = set(await Person.all().values_list("id", flat=True))
    for line, row in rows:
        if not row.get("id") or not row.get("name"):
            report.errors.append(f"line {line}: 'id' and 'name' are required")
            bar(1)
            continue
        try:
            check_all(Student, {"id": row["id"], "name": row["name"],
                                "class_name": row.get("class", "")})
        except InvalidInput as error:
            report.errors.append(f"line {line}: {error.message}")
            bar(1)
            continue
        guardian_ids, bad = [], None
        for token in _split(row.get("guardians", "")):
            pid = by_email.get(token.lower()) if "@" in token else (
                whole_number(token) if whole_number(token) in known_ids else None)
            if pid is None:
                bad = token
                break
            guardian_ids.append(pid)
        if bad is not None:
            report.errors.append(f"line {line}: unknown guardian {bad!r}")
            bar(1)
            continue
        async with in_transaction():
            _, changed = await grades.upsert_student(row["id"], row["name"], row.get("class", ""),
                                                     guardian_ids)
        report.applied += changed
        report.unchanged += not changed
        bar(1)


async def import_people(ctx: ServiceContext, rows: list[tuple[int, dict[str, str]]],
                        report: Report, bar: Callable[[int], None]) -> None:
    """Columns: name, roles, email, telegram_chat_id, phone, library_card, units, language,
    student (a pupil's own Student, role student only, #20)."""
    for line, row in rows:
        bar(1)
        try:
            wanted = people.parse_person(
                name=row.get("name", ""), roles=_split(row.get("roles", "")) or ["citizen"],
                units=_split(row.get("units", "")), email=row.get("email") or None,
                telegram_chat=row.get("telegram_chat_id") or None,
                library_card=row.get("library_card") or None, language=row.get("language"),
                phone=row.get("phone") or None, channels=ctx.channels,
                student=row.get("student") or None)
        except InvalidInput as error:
            report.errors.append(f"line {line}: {error.message}")
            continue
        if not wanted.email and not wanted.library_card:
            report.errors.append(f"line {line}: give 'email' or 'library_card' to identify the person")
            continue
        try:
            async with in_transaction():
                _, changed = await people.upsert(ctx, wanted)
        except InvalidInput as error:  # a pupil's Student the register never sent
            report.errors.append(f"line {line}: {error.message}")
            continue
        report.applied += changed
        report.unchanged += not changed


def register_feed(module: Any, name: str) -> Callable[..., Any]:
    """An importer for a register feed: each CSV row is one item of the hook's batch,
    checked by the same parser (a bad row is reported by its line and skipped)."""

    async def importer(ctx: ServiceContext, rows: list[tuple[int, dict[str, str]]],
                       report: Report, bar: Callable[[int], None]) -> None:
        good = []
        for line, row in rows:
            item: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
            period = whole_number(str(item.get("period", "")))
            if period is not None:
                item["period"] = period
            try:
                good.extend(module.parse_batch({name: [item]}))
            except InvalidInput as error:
                report.errors.append(f"line {line}: {error.message}")
        for chunk in _chunks(good):
            async with in_transaction():
                [result] = await module.apply_batches(ctx, [chunk])
            report.applied += result.get("created", 0) + result.get("updated", 0) + \
                result.get("corrected", 0)
            report.unchanged += result.get("unchanged", 0)
        bar(len(rows))

    return importer


IMPORTERS = {
    # every feed of the hooks' table, through its hook's parser …
    **{hook.feed: register_feed(hook.module, hook.feed) for hook in HOOKS},
    # … but these two, older, which name the CSV line in the field of a row's error
    # (and grades lists the unknown students)
    "grades": import_grades,
    "loans": import_loans,
    "students": import_students,
    "people": import_people,
}


async def run_import(ctx: ServiceContext, kind: str, path: str, progress: bool = True,
                     max_bytes: int = 64 * 1024 * 1024) -> Report:
    rows = read_rows(path, max_bytes)
    report = Report(kind=kind, rows=len(rows))
    if progress:
        with click.progressbar(length=len(rows), label=f"importing {kind}", file=None) as bar:
            await IMPORTERS[kind](ctx, rows, report, bar.update)
    else:
        await IMPORTERS[kind](ctx, rows, report, lambda n: None)
    return report
