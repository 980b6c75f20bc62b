"""Issue #13, RODO: the retention job covers every kind of personal data, each for the
period its setting gives (handlers/retention.py; the README's "What is stored" table)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tortoise.connection import get_connection

from gateway.jobs import run_job
from handlers import retention, rodo
from handlers.cases import contacts_of
from handlers.retention import KINDS, school_year_began
from store.models import (
    Attachment,
    Case,
    CaseEvent,
    Conversation,
    Grade,
    Homework,
    HookDelivery,
    JobRun,
    LinkCode,
    Loan,
    Outbox,
    RawInbound,
    Student,
)
from tests.conftest import PG_URL, REGISTER_SECRET, Gateway, make_mail


def test_the_school_year_begins_in_september() -> None:
    assert school_year_began(date(2026, 11, 26), "09-01") == date(2026, 9, 1)
    assert school_year_began(date(2026, 6, 20), "09-01") == date(2025, 9, 1)
    assert school_year_began(date(2026, 9, 1), "09-01") == date(2026, 9, 1)


async def test_each_kind_goes_after_its_own_period(gw: Gateway) -> None:
    now = gw.clock.now()
    # a closed case untouched for 731 days, and an open one as old
    await gw.mail(make_mail("Stara sprawa", "Mój adres: ul. Leśna 1", sender="a@example.org"))
    await gw.mail(make_mail("Otwarta sprawa", "Wciąż czekam", sender="b@example.org"))
    old = await Case.get(subject="Stara sprawa")
    await Attachment.create(case_id=old.number, filename="skan.pdf", content_type="x",
                            size=1, data=b"x", created_at=now)
    long_ago = now - timedelta(days=731)
    await Case.filter(number=old.number).update(status="resolved", updated_at=long_ago)
    await Case.filter(subject="Otwarta sprawa").update(updated_at=long_ago)
    # school records of last school year, and of this one
    student = await Student.create(id="s1", name="Kasia", class_name="4b")
    last_year = datetime(2026, 5, 10, 8, 0, tzinfo=timezone.utc)
    for gid, when in (("g-old", last_year), ("g-new", now)):
        await Grade.create(id=gid, student=student, subject="Polski", value="5",
                           recorded_at=when, updated_at=when)
    await Homework.create(id="h-old", class_name="4b", subject="Polski", kind="test",
                          title="Lektura", due=date(2026, 6, 1), updated_at=last_year)
    # a returned loan 91 days ago, a stale dialogue, an old .eml
    await Loan.create(id="L1", card="K1", title="Lalka", due=date(2026, 8, 1), returned=True,
                      updated_at=now - timedelta(days=91))
    await Conversation.create(key="telegram:1", kind="case", step="body", data={},
                              updated_at=now - timedelta(days=8))
    spool = Path(gw.settings.sent_mail_dir)
    spool.mkdir(parents=True, exist_ok=True)
    eml = spool / "old.eml"
    eml.write_bytes(b"To: x@example.org\r\n\r\nx")
    os.utime(eml, (time.time() - 31 * 86400,) * 2)

    summary = await run_job(gw.services, "retention")

    kept = await Case.get(number=old.number)
    assert kept.status == "resolved"  # the record stays, without what the resident wrote
    assert kept.subject == rodo.ERASED  # README: number, category, status, dates, notes
    assert await contacts_of(kept) == set() and "Leśna" not in kept.body
    assert not await CaseEvent.filter(case_id=old.number, text__icontains="Leśna").exists()
    assert not await Attachment.filter(case_id=old.number).exists()
    assert "Wciąż czekam" in (await Case.get(subject="Otwarta sprawa")).body  # open: kept
    assert [g.id for g in await Grade.all()] == ["g-new"]
    assert not await Homework.exists(id="h-old")
    assert not await Loan.exists(id="L1") and not await Conversation.exists(key="telegram:1")
    assert not eml.exists()
    assert {f"{kind}_deleted" for kind in KINDS} <= set(summary)
    assert summary["closed_cases_deleted"] == 1


async def test_job_runs_hook_ids_and_link_codes_go_after_their_periods(gw: Gateway) -> None:
    """Issue #18, fault 15: a job run every 30 s (~2,900 rows a day), every hook's id and
    every link code were kept for ever. Each now goes after its own period; the last run
    of each job stays whatever its age (the console shows it)."""
    now = gw.clock.now()
    for n, age in enumerate((40, 31, 29)):  # days
        await JobRun.create(job="attendance-gather", due=f"d{n}",
                            started_at=now - timedelta(days=age, minutes=1),
                            finished_at=now - timedelta(days=age))
    await JobRun.create(job="overdue-reminders", due="old", started_at=now - timedelta(days=400))
    for hook, age in (("register:old", 8), ("register:new", 6)):
        await HookDelivery.create(webhook_id=hook, source="register", response={"ok": True},
                                  received_at=now - timedelta(days=age))
    person = await gw.person()
    for code, age in (("OLDCODE1", 31), ("NEWCODE1", 29)):  # days since it expired
        await LinkCode.create(code=code, person_id=person, expires_at=now - timedelta(days=age))

    summary = await run_job(gw.services, "retention")

    assert sorted(await JobRun.filter(job="attendance-gather").values_list("due", flat=True)
                  ) == ["d2"]
    assert await JobRun.exists(job="overdue-reminders", due="old")  # the last one of its job
    assert await HookDelivery.all().values_list("webhook_id", flat=True) == ["register:new"]
    assert await LinkCode.all().values_list("code", flat=True) == ["NEWCODE1"]
    assert summary["job_runs_deleted"] == 2
    assert summary["hook_ids_deleted"] == 1 and summary["link_codes_deleted"] == 1


async def test_a_replayed_hook_is_still_recognised_within_its_period(gw: Gateway) -> None:
    """Pruning hook ids must not reopen the replay window: within
    `EMIL_RETAIN_HOOK_DAYS` a sender retrying a hook (same webhook-id, newly signed)
    gets the first answer, and nothing is applied twice."""
    await Student.create(id="S1", name="Kasia", class_name="4b")
    body = json.dumps({"grades": [{"id": "G1", "student": "S1", "subject": "Polski",
                                   "value": "5", "recorded_at": "2026-11-25T09:00:00Z"}]}
                      ).encode()
    first = await gw.client.post("/hooks/register/grades", data=body,
                                 headers=gw.signed(body, REGISTER_SECRET, "h-1"))
    assert first.status == 200
    gw.clock.advance(days=6)
    await run_job(gw.services, "retention")
    again = await gw.client.post("/hooks/register/grades", data=body,
                                 headers=gw.signed(body, REGISTER_SECRET, "h-1"))
    assert again.status == 200 and (await again.json()).get("replayed") is True


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's statement trace")
async def test_retention_deletes_in_small_commits(gw: Gateway, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review of #18: retention deleted every old raw mail (and outbox row, attachment,
    Message-ID) in one statement of one transaction; with `secure_delete` on, 100 MB took
    ~1.5 s with SQLite's one write connection held. Each kind now goes in parts, each its
    own commit, and a part of rows carrying payloads is a few rows."""
    monkeypatch.setattr(retention, "BLOB_ROWS", 2, raising=False)
    now = gw.clock.now()
    long_ago = now - timedelta(days=400)
    for n in range(7):
        await RawInbound.create(channel="email", external_id=f"old-{n}", envelope={},
                                payload=b"x" * 1000, status="done", received_at=long_ago)
        await Outbox.create(channel="email", recipient="a@example.org",
                            idempotency_key=f"old-{n}", payload={}, status="sent",
                            created_at=long_ago, next_attempt_at=long_ago)
    statements: list[str] = []
    connection = get_connection("default")._connection
    await connection.set_trace_callback(statements.append)
    try:
        summary = await run_job(gw.services, "retention")
    finally:
        await connection.set_trace_callback(None)
    assert summary["raw_inbound_deleted"] == 7 and summary["sent_messages_deleted"] >= 7
    for table in ("raw_inbound", "outbox"):
        deletes = [s for s in statements if s.startswith(f'DELETE FROM "{table}"')]
        assert len(deletes) >= 4, deletes  # 7 rows, 2 at a time
        assert all(re.search(r'"id" IN \(\d+(,\d+)?\)$', s) for s in deletes), deletes
    # no transaction holds more than one part: a part is its own commit
    inside = False
    for statement in statements:
        if statement == "BEGIN":
            inside, parts = True, 0
        elif statement in ("COMMIT", "ROLLBACK"):
            inside = False
        elif inside and statement.startswith(('DELETE FROM "raw_inbound"',
                                              'DELETE FROM "outbox"')):
            parts += 1
            assert parts == 1, statements


async def test_delivered_rows_go_after_their_period_too(gw: Gateway) -> None:
    """Review of #19: an SMS delivery report makes a row `delivered`, a state retention
    did not know, so every delivered message (its rendered text) was kept for ever."""
    long_ago = gw.clock.now() - timedelta(days=400)
    await Outbox.create(channel="sms", recipient="+48500100200", idempotency_key="old-sms",
                        payload={"text": "Twoja sprawa UM-2026-000001"}, status="delivered",
                        created_at=long_ago, next_attempt_at=long_ago, sent_at=long_ago,
                        delivered_at=long_ago)
    summary = await run_job(gw.services, "retention")
    assert summary["sent_messages_deleted"] >= 1
    assert not await Outbox.filter(idempotency_key="old-sms").exists()
