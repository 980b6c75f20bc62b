"""Issue #11: the authorization matrix. Every HTTP endpoint and every bot command, for
every kind of caller, allowed or refused as expected — one table, all checked."""

from __future__ import annotations

import re

import pytest

from gateway.auth import create_key
from tests.conftest import Gateway
from tests.doubles.botapi import callback_update
from tests.test_grades import grade, push
from tests.test_library import loan, sync

# chats of the cast
REQUESTER, OTHER, GUARDIAN, OTHER_PARENT, READER, LIBRARIAN, STAFF_A, STAFF_B, ADMIN = (
    8001, 8002, 8003, 8004, 8005, 8006, 8007, 8008, 8009)
STRANGER = 8099  # never linked: "anonymous" in the bot


@pytest.fixture
async def town(gw: Gateway) -> dict:
    """Everyone of the matrix, linked through real `/start CODE`, with a case, a child
    with a grade, a loan and an announcement to act on."""
    ids = {
        "requester": await gw.linked(REQUESTER, "Rezydent", ["citizen"]),
        "other": await gw.linked(OTHER, "Sąsiad", ["citizen"]),
        "guardian": await gw.linked(GUARDIAN, "Rodzic", ["parent"]),
        "other_parent": await gw.linked(OTHER_PARENT, "Inny rodzic", ["parent"]),
        "reader": await gw.linked(READER, "Czytelnik", ["citizen"], library_card="K1"),
        "librarian": await gw.linked(LIBRARIAN, "Bibliotekarka", ["librarian"],
                                     units=["biblioteka"]),
        "staff_a": await gw.linked(STAFF_A, "Urzędnik A", ["staff"], units=["urzad"]),
        "staff_b": await gw.linked(STAFF_B, "Nauczyciel B", ["staff"], units=["szkola-1"]),
        "admin": await gw.linked(ADMIN, "Admin", ["admin"]),
    }
    for parent, student in (("guardian", "S1"), ("other_parent", "S2")):
        resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
            "id": student, "name": f"Dziecko {student}", "class": "4b",
            "guardians": [ids[parent]]})
        assert resp.status == 201
    assert (await push(gw, [grade(1, "S1"), grade(2, "S2")])).status == 200
    assert (await sync(gw, [loan(1, "K1")])).status == 200
    await gw.tg(REQUESTER, "/sprawa")
    await gw.tg(REQUESTER, "Zepsuta ławka")
    created = (await gw.tg(REQUESTER, "W parku przy stawie."))[-1]
    ids["case"] = re.search(r"UM-\d{4}-\d{6}", created).group(0)
    ids["code"] = re.search(r"([A-Z2-9]{4}-){3}[A-Z2-9]{4}", created).group(0)
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Inna", "body": "b"})
    ids["other_code"] = (await resp.json())["access_code"]
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "T", "body": "B", "audience": {"units": ["urzad"]}, "publish_at":
        "2030-01-01T00:00:00+00:00"})
    ids["announcement"] = (await resp.json())["id"]
    await gw.drain()
    return ids


# --- the bot ---------------------------------------------------------------------------------

ALLOW, DENY = True, False
NOT_LINKED, NOT_ALLOWED = "nie jest połączony", "nie jest dostępne"

#: (command, who, allowed?, what the last reply must contain)
BOT = [
    ("/oceny", GUARDIAN, ALLOW, "Dziecko S1"),
    ("/oceny", OTHER_PARENT, ALLOW, "Dziecko S2"),
    ("/oceny", REQUESTER, DENY, NOT_ALLOWED),
    ("/oceny", STAFF_A, DENY, NOT_ALLOWED),
    ("/oceny", STRANGER, DENY, NOT_LINKED),
    ("/status {case}", REQUESTER, ALLOW, "Zepsuta ławka"),
    ("/status {case}", OTHER, DENY, "Nie możemy podać"),
    ("/status {case}", STAFF_B, DENY, "Nie możemy podać"),
    ("/status {case}", STRANGER, DENY, "Nie możemy podać"),
    ("/wypozyczenia", READER, ALLOW, "Książka 1"),
    ("/wypozyczenia", OTHER, DENY, "Nie znamy Twojej karty"),
    ("/wypozyczenia", STRANGER, DENY, NOT_LINKED),
    ("/przedluz", READER, ALLOW, "Przedłużono"),
    ("/przedluz", LIBRARIAN, DENY, "Nie znamy Twojej karty"),
    ("/przedluz", STRANGER, DENY, NOT_LINKED),
    ("/ogloszenie", STAFF_A, ALLOW, "Nowe ogłoszenie"),
    ("/ogloszenie", ADMIN, ALLOW, "Nowe ogłoszenie"),
    ("/ogloszenie", READER, DENY, NOT_ALLOWED),
    ("/ogloszenie", LIBRARIAN, DENY, NOT_ALLOWED),
    ("/ogloszenie", STRANGER, DENY, NOT_LINKED),
    ("/ustawienia", GUARDIAN, ALLOW, "Ustawienia"),
    ("/ustawienia", STRANGER, DENY, NOT_LINKED),
    ("/sprawa", STRANGER, ALLOW, "Nowa sprawa"),
    ("/pomoc", STRANGER, ALLOW, "/sprawa"),
]


async def test_bot_commands_by_caller(gw: Gateway, town: dict) -> None:
    failures = []
    for command, chat, allowed, marker in BOT:
        text = command.format(**town)
        replies = await gw.tg(chat, text)
        await gw.tg(chat, "/anuluj")  # end any dialogue the command began
        got = replies[-1] if replies else ""
        if marker not in got:
            failures.append((text, chat, "allowed" if allowed else "denied", got[:80]))
    assert not failures, failures


async def test_buttons_of_someone_elses_child_or_staff_audience(gw: Gateway, town: dict) -> None:
    before = len(gw.botapi.texts_to(OTHER_PARENT))
    await gw.update(callback_update(OTHER_PARENT, "grades:S1"))  # Guardian's child
    assert "Nie możemy pokazać" in gw.botapi.texts_to(OTHER_PARENT)[before]
    # staff of unit B cannot address unit A
    await gw.tg(STAFF_B, "/ogloszenie")
    [refusal] = await gw.tg(STAFF_B, "urzad")
    assert "tylko w swoich jednostkach" in refusal


# --- HTTP ------------------------------------------------------------------------------------

#: who → Authorization header (None: anonymous); keys are made in the test
CALLERS = ("anonymous", "wrong_scope", "right_scope", "admin")

#: (method, path, body, scope needed or None for public)
HTTP = [
    ("GET", "/api/v1/cases/{case}", None, "cases"),
    ("POST", "/api/v1/cases/{case}/events", {"note": "n"}, "cases"),
    ("POST", "/api/v1/people", {"name": "N", "roles": ["citizen"]}, "admin"),
    ("PATCH", "/api/v1/people/{requester}", {"language": "en"}, "admin"),
    ("POST", "/api/v1/people/{requester}/link-codes", None, "admin"),
    ("POST", "/api/v1/students", {"id": "S9", "name": "N"}, "admin"),
    ("GET", "/api/v1/api-keys", None, "admin"),
    ("POST", "/api/v1/api-keys", {"scopes": ["cases"]}, "admin"),
    ("GET", "/api/v1/library/renewals", None, "library"),
    ("POST", "/api/v1/library/overdue-run", None, "library"),
    ("POST", "/api/v1/announcements", {"title": "t", "body": "b",
                                       "audience": {"units": ["urzad"]}}, "announce"),
    ("GET", "/api/v1/announcements/{announcement}", None, "announce"),
    ("POST", "/api/v1/announcements/{announcement}/cancel", None, "announce"),
    ("POST", "/api/v1/cases", {"subject": "s", "body": "b"}, None),
    ("GET", "/healthz", None, None),
    ("GET", "/api/openapi.json", None, None),
]


async def test_http_endpoints_by_caller(gw: Gateway, town: dict) -> None:
    keys = {}
    for scope in ("cases", "admin", "library", "announce"):
        keys[scope] = await create_key([scope], label=scope)
    wrong = {"cases": "library", "admin": "cases", "library": "announce", "announce": "cases"}
    failures = []
    for method, template, body, scope in HTTP:
        path = template.format(**town)
        for caller in CALLERS:
            token = {"anonymous": None, "admin": keys["admin"],
                     "right_scope": keys.get(scope or "cases"),
                     "wrong_scope": keys[wrong.get(scope or "cases", "library")]}[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            resp = await gw.client.request(method, path, json=body, headers=headers)
            expected = scope is None or caller in ("right_scope", "admin")
            # past the door: done, or refused for what it asks (409: already cancelled)
            allowed = resp.status not in (401, 403) and resp.status < 500
            if allowed != expected:
                failures.append((method, path, caller, resp.status))
    assert not failures, failures


async def test_a_case_by_access_code_only_for_its_requester(gw: Gateway, town: dict) -> None:
    case = town["case"]
    assert (await gw.client.get(f"/api/v1/cases/{case}?code={town['code']}")).status == 200
    assert (await gw.client.get(f"/api/v1/cases/{case}?code={town['other_code']}")).status == 404
    assert (await gw.client.get(f"/api/v1/cases/{case}")).status == 401
