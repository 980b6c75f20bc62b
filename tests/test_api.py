"""The HTTP API: cases, people, link codes, API keys, errors."""

from __future__ import annotations

import asyncio
import re

from gateway.auth import create_key
from store.models import ApiKey, Case, Outbox
from tests.conftest import Gateway


async def test_create_case_and_read_it_with_the_code(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Zgłoszenie", "body": "Treść",
                                                       "email": "Marek <marek@example.pl>"})
    assert resp.status == 201
    body = await resp.json()
    assert body["number"] == "UM-2026-000001" and body["status"] == "received"
    # naming an address, an anonymous caller does not get the code: only that mailbox does
    assert "access_code" not in body
    await gw.drain()
    [mail] = gw.sent_mail()
    code = re.search(r"Kod dostępu: ([A-Z0-9-]+)", mail.get_body(("plain",)).get_content())[1]
    resp = await gw.client.get(f"/api/v1/cases/{body['number']}?code={code}")
    case = await resp.json()
    assert case["subject"] == "Zgłoszenie" and case["open311_status"] == "open"
    assert [h["kind"] for h in case["history"]] == ["created"]
    resp = await gw.client.get(f"/api/v1/cases/{body['number']}?code=WRONG123")
    assert resp.status == 404
    resp = await gw.client.get(f"/api/v1/cases/{body['number']}")
    assert resp.status == 401
    # the requester got a confirmation by mail
    assert mail["To"] == "marek@example.pl" and body["number"] in mail["Subject"]


async def test_concurrent_submissions_share_commits_and_get_unique_numbers(gw: Gateway) -> None:
    async def submit(n: int) -> str:
        # the town's web form backend, with a `cases` key (anonymous callers are rate limited)
        resp = await gw.client.post("/api/v1/cases", json={"subject": f"S{n}", "body": "b"},
                                    headers=gw.admin)
        assert resp.status == 201
        return (await resp.json())["number"]

    numbers = await asyncio.gather(*(submit(n) for n in range(60)))
    assert len(set(numbers)) == 60
    assert sorted(numbers) == [f"UM-2026-{n:06d}" for n in range(1, 61)]
    assert await Case.all().count() == 60


async def test_validation_names_the_field(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/cases", json={"body": "no subject"})
    assert resp.status == 400
    assert (await resp.json())["error"] == {"code": "missing_field",
                                            "message": "'subject' is required", "field": "subject"}
    resp = await gw.client.post("/api/v1/cases", json={"subject": "x", "body": 5})
    assert (await resp.json())["error"]["field"] == "body"
    resp = await gw.client.post("/api/v1/cases", json={"subject": "x", "body": "y", "email": "nope"})
    assert (await resp.json())["error"]["field"] == "email"
    resp = await gw.client.post("/api/v1/cases", data=b"{not json",
                                headers={"Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"


async def test_staff_events_need_the_cases_scope(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/cases", json={"subject": "s", "body": "b",
                                                       "email": "k@example.pl"})
    number = (await resp.json())["number"]
    key = await create_key(["announce"])
    resp = await gw.client.post(f"/api/v1/cases/{number}/events", json={"status": "resolved"},
                                headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 403
    cases_key = await create_key(["cases"])
    headers = {"Authorization": f"Bearer {cases_key}"}
    resp = await gw.client.post(f"/api/v1/cases/{number}/events", json={"status": "done"},
                                headers=headers)
    assert (await resp.json())["error"]["field"] == "status"
    resp = await gw.client.post(f"/api/v1/cases/{number}/events",
                                json={"note": "wewnętrzna", "public": False}, headers=headers)
    assert resp.status == 201
    resp = await gw.client.post(f"/api/v1/cases/{number}/events",
                                json={"status": "resolved", "note": "Naprawione."}, headers=headers)
    assert resp.status == 201
    await gw.drain()
    mails = gw.sent_mail()
    assert len(mails) == 2  # confirmation + the public change; the private note is not sent
    assert "załatwiona" in mails[1]["Subject"]
    resp = await gw.client.get(f"/api/v1/cases/{number}", headers=headers)
    history = (await resp.json())["history"]
    assert [h["kind"] for h in history] == ["created", "status"]
    assert (await resp.json())["open311_status"] == "closed"


async def test_api_keys_are_stored_hashed(gw: Gateway) -> None:
    key = await create_key(["admin"])
    stored = await ApiKey.get()
    assert key not in stored.key_hash and len(stored.key_hash) == 64
    resp = await gw.client.post("/api/v1/people", json={"name": "A", "roles": ["citizen"]},
                                headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 201
    resp = await gw.client.post("/api/v1/people", json={"name": "A", "roles": ["citizen"]},
                                headers={"Authorization": "Bearer emk_wrong"})
    assert resp.status == 401


async def test_people_validation(gw: Gateway) -> None:
    resp = await gw.client.post("/api/v1/people", json={"name": "A", "roles": ["king"]},
                                headers=gw.admin)
    assert (await resp.json())["error"]["field"] == "roles"
    resp = await gw.client.post("/api/v1/people/999/link-codes", headers=gw.admin)
    assert resp.status == 404


async def test_requester_notice_falls_back_to_email_when_the_bot_is_blocked(gw: Gateway) -> None:
    await gw.linked(2001, "Ola", email="ola@example.pl")
    await gw.tg(2001, "/sprawa")
    await gw.tg(2001, "Psy bez smyczy")
    await gw.tg(2001, "W parku codziennie.")
    number = (await Case.get()).number
    gw.botapi.fail_next(403, "Forbidden: bot was blocked by the user")
    resp = await gw.client.post(f"/api/v1/cases/{number}/events", headers=gw.admin,
                                json={"status": "in_progress"})
    assert resp.status == 201
    await gw.drain()
    [mail] = gw.sent_mail()
    assert mail["To"] == "ola@example.pl" and "w toku" in mail["Subject"]
    failed = await Outbox.get(status="failed")
    assert failed.channel == "telegram" and "blocked" in failed.last_error


async def test_metrics_and_health(gw: Gateway) -> None:
    resp = await gw.client.get("/metrics")
    text = await resp.text()
    assert "emil_outbox_depth" in text and "emil_outbox_oldest_pending_seconds" in text
