"""Signed files that came with a case are verified after they arrive (issue #20), by a
background part, not by the intake: verification takes milliseconds to seconds of CPU,
and a case must be stored (and its `250` or `201` given) without waiting for it.

The part walks the attachments in id order behind a watermark kept in the `counter`
table (`signatures-checked`: the last attachment id looked at). A round takes the next
few attachments, verifies the signable ones — each in a child process
(`python -m handlers.signatures`) limited in time and memory, so a hostile PDF or XML
costs that child — and then, in one transaction holding the watermark's row, stores
their verdicts and moves the watermark past them. A crash before that commit loses
nothing (the round runs again after the restart); two instances doing the same round
store it once (the second finds the watermark moved and drops its work). The watermark
passes only ids no running transaction can still precede (store/horizon.py: decided by
PostgreSQL's snapshots, not by any instance's clock), and a file whose verdicts the
database refuses gets "unreadable": no file can hold the watermark back for good.
The child gets a minimal environment (none of the gateway's secrets) and sets its own
limits.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from handlers import signatures
from handlers.signatures import Verdict
from store.horizon import Horizon
from store.models import Attachment, Counter, DocumentSignature

log = logging.getLogger(__name__)

WATERMARK = "signatures-checked"
#: attachments looked at per round (their bytes are read one at a time)
BATCH = 20
#: content types that say nothing about the file: its first bytes decide
_UNTYPED = ("", "application/octet-stream", "application/binary", "binary/octet-stream")
_PROJECT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Limits:
    """A child verification's bounds: wall time, and address space (RLIMIT_AS)."""

    seconds: float = 30.0
    memory_bytes: int = 2 * 1024 ** 3


Verify = Callable[[str, str, bytes, bytes | None], Awaitable[list[Verdict]]]


def child_command(limits: Limits) -> list[str]:
    """How the child is started: this Python, ignoring PYTHON* variables and the user's
    site directory (-E -s), with its limits on its command line (it sets them itself:
    handlers.signatures.bound). The project is found from the working directory."""
    return [sys.executable, "-E", "-s", "-m", "handlers.signatures",
            "--cpu-seconds", str(int(limits.seconds) + 1),
            "--memory-bytes", str(limits.memory_bytes)]


def child_environment() -> dict[str, str]:
    """All the child gets of the environment: a default PATH and a UTF-8 locale. The
    gateway's own environment holds its secrets (SMTP and bot passwords, API keys); a
    child that parses strangers' files must not be able to read them."""
    return {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}


def child_verifier(roots_pem: bytes | None, limits: Limits = Limits()) -> Verify:
    """Verify one file in a child process, killed after `limits.seconds`; a child that
    dies or overruns gives an `unreadable` verdict (stored: the file is not tried again)."""

    async def verify(filename: str, content_type: str, data: bytes,
                     covered: bytes | None) -> list[Verdict]:
        kind = signatures.kind_of(filename, content_type, data[:64]) or signatures.PADES
        request = json.dumps({
            "filename": filename, "content_type": content_type,
            "data": base64.b64encode(data).decode(),
            "covered": base64.b64encode(covered).decode() if covered is not None else None,
            "roots": roots_pem.decode() if roots_pem else None}).encode()
        child = await asyncio.create_subprocess_exec(
            *child_command(limits), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=child_environment(), cwd=str(_PROJECT))
        try:
            out, err = await asyncio.wait_for(child.communicate(request), limits.seconds)
        except TimeoutError:
            child.kill()
            await child.wait()
            log.warning("verifying %r took over %.0f s; marked unreadable", filename,
                        limits.seconds)
            return [Verdict(kind=kind, status=signatures.UNREADABLE, detail=signatures.TIMEOUT)]
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        if child.returncode != 0:
            log.warning("verifying %r failed (exit %s): %s", filename, child.returncode,
                        err.decode(errors="replace")[-500:])
            return [Verdict(kind=kind, status=signatures.UNREADABLE,
                            detail=signatures.MALFORMED)]
        try:
            answer = json.loads(out)
            if not isinstance(answer, list):
                raise TypeError("not a list of verdicts")
            return [Verdict.of(item) for item in answer]
        except (ValueError, TypeError, KeyError):
            # an answer that is not verdicts would fail the round, and the next, for
            # good: the file is unreadable instead
            log.warning("verifying %r gave no verdicts: %r", filename, out[:200])
            return [Verdict(kind=kind, status=signatures.UNREADABLE,
                            detail=signatures.MALFORMED)]

    return verify


async def _watermark() -> int:
    counter, _ = await Counter.get_or_create(name=WATERMARK, defaults={"value": 0})
    return counter.value


def _candidate(row: dict[str, Any]) -> bool:
    """Worth reading the bytes of: named or typed as signable, or untyped (the bytes
    will tell)."""
    return (signatures.kind_of(row["filename"], row["content_type"]) is not None
            or row["content_type"].lower().split(";")[0].strip() in _UNTYPED)


async def _covered(row: dict[str, Any]) -> tuple[int | None, bytes | None]:
    """The file a detached signature covers: in the same case, named by the signature's
    name (`wniosek.pdf.p7s` → `wniosek.pdf`), else the one other file that came with it."""
    siblings = await Attachment.filter(case_id=row["case_id"]).exclude(id=row["id"]).values(
        "id", "filename", "created_at")
    name = signatures.covered_name(row["filename"])
    found = [s for s in siblings if name is not None and s["filename"] == name]
    if not found:
        found = [s for s in siblings if s["created_at"] == row["created_at"]
                 and signatures.kind_of(s["filename"], "") != signatures.CADES]
    if len(found) != 1:
        return None, None
    data = await Attachment.filter(id=found[0]["id"]).values_list("data", flat=True)
    return found[0]["id"], bytes(data[0]) if data else None


async def check_new(verify: Verify, now: datetime, horizon: Horizon | None = None,
                    batch: int = BATCH) -> int:
    """One round: verify the next `batch` attachments behind the watermark, up to the
    horizon (store/horizon.py: no id below it can still be committed; no clock decides
    it), and store what they carry. Returns how many attachments it looked at (0:
    nothing new). `now` only stamps the verdicts."""
    after = await _watermark()
    final = await (horizon or Horizon(Attachment._meta.db_table)).final(
        Attachment._meta.db)
    query = Attachment.filter(id__gt=after)
    if final is not None:
        query = query.filter(id__lte=final)
    rows = await query.order_by("id").limit(batch).values(
        "id", "case_id", "filename", "content_type", "created_at")
    if not rows:
        return 0
    found: list[list[DocumentSignature]] = []
    for row in rows:
        if not _candidate(row):
            continue
        data = await Attachment.filter(id=row["id"]).values_list("data", flat=True)
        blob = bytes(data[0]) if data else b""
        kind = signatures.kind_of(row["filename"], row["content_type"], blob[:64])
        if kind is None:
            continue
        covered_id, covered = (await _covered(row)) if kind == signatures.CADES else (None, None)
        found.append([_stored(row, kind, covered_id, verdict, now)
                      for verdict in await verify(row["filename"], row["content_type"], blob,
                                                  covered)])
    last = rows[-1]["id"]
    async with in_transaction() as db:
        mark = await Counter.select_for_update().using_db(db).get(name=WATERMARK)
        if mark.value != after:
            return len(rows)  # another instance stored this round meanwhile
        ids = [row["id"] for row in rows]
        # idempotent: a round stored once, whatever ran before
        await DocumentSignature.filter(attachment_id__in=ids).using_db(db).delete()
        stored = 0
        for verdicts in found:
            stored += await _store(db, verdicts)
        await Counter.filter(name=WATERMARK).using_db(db).update(value=last)
    if stored:
        log.info("signatures: %d verdict(s) for %d file(s)", stored, len(rows))
    return len(rows)


def _stored(row: dict[str, Any], kind: str, covered_id: int | None, verdict: Verdict,
            now: datetime) -> DocumentSignature:
    """A verdict as a row: every text printable (signatures.printable) and every code one
    the pages know. A verdict is what a child parsed out of a stranger's file; one the
    database refuses would fail its round again and again, and the watermark would
    never pass the file. Codes it does not know make it "unreadable"."""
    if (verdict.kind, verdict.status, verdict.detail) != (
            kind, verdict.status if verdict.status in signatures.STATUSES else None,
            verdict.detail if verdict.detail in signatures.DETAILS else None):
        log.warning("a verdict for %r held unknown codes; stored as unreadable", row["filename"])
        verdict = Verdict(kind=kind, status=signatures.UNREADABLE, detail=signatures.MALFORMED)
    try:
        signed_at = datetime.fromisoformat(verdict.signed_at) if verdict.signed_at else None
    except (TypeError, ValueError):
        signed_at = None  # a date we cannot read is no date
    if signed_at is not None and signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    return DocumentSignature(
        case_id=row["case_id"], attachment_id=row["id"], signed_attachment_id=covered_id,
        kind=kind, status=verdict.status, signer=signatures.printable(verdict.signer),
        qualified=verdict.qualified is True and verdict.status == signatures.VALID,
        signed_at=signed_at, detail=verdict.detail, checked_at=now)


async def _store(db: Any, verdicts: list[DocumentSignature]) -> int:
    """One file's verdicts, under a savepoint: if the database still refuses them, the
    file gets one "unreadable" verdict instead, and if it refuses that too (the file was
    erased meanwhile), nothing — the round goes on and the watermark passes the file."""
    if not verdicts:
        return 0
    first = verdicts[0]
    try:
        async with db._in_transaction():  # a SAVEPOINT inside the round's transaction
            await DocumentSignature.bulk_create(verdicts, using_db=db)
        return len(verdicts)
    except (IntegrityError, OperationalError, ValueError):
        log.warning("the verdicts for attachment %s could not be stored", first.attachment_id,
                    exc_info=True)
    try:
        async with db._in_transaction():
            await DocumentSignature.create(
                using_db=db, case_id=first.case_id, attachment_id=first.attachment_id,
                signed_attachment_id=first.signed_attachment_id, kind=first.kind,
                status=signatures.UNREADABLE, detail=signatures.MALFORMED,
                checked_at=first.checked_at)
        return 1
    except (IntegrityError, OperationalError):
        log.info("attachment %s is gone; nothing stored for it", first.attachment_id)
        return 0


async def drain(verify: Verify, now: datetime) -> int:
    """Every round there is now."""
    total, horizon = 0, Horizon(Attachment._meta.db_table)
    while (done := await check_new(verify, now, horizon)):
        total += done
    return total


async def signatures_by_file(number: str) -> dict[int, list[DocumentSignature]]:
    """A case's stored verdicts by the file that carries them (the pages show each
    under its file; a detached signature's under the signature file)."""
    found: dict[int, list[DocumentSignature]] = {}
    for signature in await DocumentSignature.filter(case_id=number).order_by("id"):
        found.setdefault(signature.attachment_id, []).append(signature)
    return found


async def run(verify: Verify, clock: Callable[[], datetime], beat: Callable[[], None],
              idle: Callable[[float], Awaitable[None]], poll_seconds: float = 5.0) -> None:
    """The background part: rounds while there is work, then a pause."""
    horizon = Horizon(Attachment._meta.db_table)
    while True:
        done = await check_new(verify, clock(), horizon)
        beat()
        if not done:
            await idle(poll_seconds)
