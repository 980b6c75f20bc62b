"""Issue #11: the authorization matrix. Every HTTP endpoint and every bot command, for
every kind of caller, allowed or refused as expected — one table, all checked."""

from __future__ import annotations

import re

import pytest

from gateway.auth import create_key
from gateway.jobs import run_job
from handlers.announcements import may_withdraw
from handlers.audit import Actor
from store.models import Announcement, Person
from tests.conftest import Gateway
from tests.doubles.botapi import callback_update
from tests.panel import csrf_of, sign_in, staff_member
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


# --- withdrawing an announcement (issue #18, fault 7) ------------------------------------------

#: (who, action, answer): its author and admins may cancel or retract an announcement; a
#: colleague of the same unit sees it (403 on acting), staff of another unit do not (404)
WITHDRAW = [
    ("colleague", "wycofaj", 403),
    ("other_unit", "wycofaj", 404),
    ("author", "wycofaj", 303),
    ("admin", "wycofaj", 303),
    ("colleague", "anuluj", 403),
    ("other_unit", "anuluj", 404),
    ("author", "anuluj", 303),
    ("admin", "anuluj", 303),
]
CONSOLE_CAST = {"author": (["staff"], ["urzad"]), "colleague": (["staff"], ["urzad"]),
                "other_unit": (["staff"], ["szkola-1"]), "admin": (["admin"], [])}


async def _announced(gw: Gateway, author: int, published: bool) -> int:
    when = "2026-11-25T09:00:00+00:00" if published else "2030-01-01T00:00:00+00:00"
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "Zebranie", "body": "W czwartek.", "audience": {"units": ["urzad"]},
        "publish_at": when, "author_id": author})
    assert resp.status == 202, await resp.text()
    if published:
        await run_job(gw.services, "scheduled-announcements")
    return (await resp.json())["id"]


async def test_only_the_author_or_an_admin_withdraws_an_announcement(
        gw: Gateway, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    ids, clients, tokens = {}, {}, {}
    for who, (roles, units) in CONSOLE_CAST.items():
        ids[who] = await staff_member(gw, f"{who}@milanowek.example", roles, units, name=who)
        clients[who] = await sign_in(gw, f"{who}@milanowek.example",
                                     await aiohttp_client(gw.client.server))
        tokens[who] = csrf_of(await (await clients[who].get("/panel/")).text())
    failures = []
    for who, action, answer in WITHDRAW:
        number = await _announced(gw, ids["author"], published=action == "wycofaj")
        before = (await Announcement.get(id=number)).status
        resp = await clients[who].post(f"/panel/ogloszenia/{number}/{action}",
                                       data={"csrf": tokens[who]}, allow_redirects=False)
        after = (await Announcement.get(id=number)).status
        if resp.status != answer or (after != before) != (answer == 303):
            failures.append((who, action, resp.status, before, after))
    assert not failures, failures
    # the page offers the button only to those who may use it
    number = await _announced(gw, ids["author"], published=True)
    for who, shown in (("author", True), ("admin", True), ("colleague", False)):
        page = await (await clients[who].get(f"/panel/ogloszenia/{number}")).text()
        assert (f"/panel/ogloszenia/{number}/wycofaj" in page) == shown, who
    # the API's keys act for the office (as admins): a key with scope `announce` may
    resp = await gw.client.post(f"/api/v1/announcements/{number}/retract", headers=gw.admin)
    assert resp.status == 200
    # the one rule, as every channel asks it
    people = {who: await Person.get(id=ids[who]) for who in ids}
    found = await Announcement.get(id=number)
    assert [may_withdraw(Actor.of(people[who], "bot"), found)
            for who in ("author", "colleague", "other_unit", "admin")] == [True, False, False,
                                                                            True]
    assert may_withdraw(Actor("key", "api", scopes=frozenset({"announce"})), found)
    assert not may_withdraw(Actor("key", "api", scopes=frozenset({"cases"})), found)


# --- the staff actions' use-cases, called directly ------------------------------------------

#: who acts: a person (roles, units) or an API key (scopes), as every channel hands them in
ACTORS = {
    "admin": (["admin"], [], None),
    "author": (["staff"], ["urzad"], None),
    "colleague": (["staff"], ["urzad"], None),
    "other_unit": (["staff"], ["szkola-1"], None),
    "citizen": (["citizen"], [], None),
    "key_cases": (None, None, {"cases"}),
    "key_announce": (None, None, {"announce"}),
}
#: what each kind of actor may do, by the one rule of each action (EMIL_CASES_UNIT=urzad);
#: the author is the author of the announcement acted on, and a clerk like any other
MAY = {
    "case.reply": {"admin", "author", "colleague", "key_cases"},
    "case.note": {"admin", "author", "colleague", "key_cases"},
    "case.status": {"admin", "author", "colleague", "key_cases"},
    "case.assign": {"admin", "author", "colleague", "key_cases"},
    "unread.open_case": {"admin", "author", "colleague", "key_cases"},
    "unread.handled": {"admin", "author", "colleague", "key_cases"},
    "announcement.cancel": {"admin", "author", "key_announce"},
    "announcement.retract": {"admin", "author", "key_announce"},
}


async def _act(gw: Gateway, action: str, actor, people: dict) -> tuple[str, object]:  # type: ignore[no-untyped-def]
    """Do `action` on a fresh object through its use-case; returns the object's name in
    the audit trail and what the use-case returned (or the refusal it raised)."""
    from handlers import announcements, audit, cases

    ctx = gw.services
    if action.startswith("unread."):
        from handlers import unread
        from store.models import RawInbound

        row = await RawInbound.create(channel="email", external_id=f"<{action}.{actor.label}@x>",
                                      payload=b"x",
                                      status="unread", received_at=ctx.clock.now(),
                                      summary={"address": "jan@example.pl", "subject": "?"})
        clerk = actor.person or people["colleague"]
        try:
            if action == "unread.open_case":
                done = await unread.open_case(ctx, row.id, subject="Ławka", text="b",
                                              clerk=clerk, actor=actor)
            else:
                done = await unread.mark_handled(ctx, row.id, clerk=clerk, actor=actor)
        except audit.Refused as refused:
            done = refused
        return f"inbound:{row.id}", done
    if action.startswith("case."):
        from tortoise.transactions import in_transaction

        async with in_transaction():  # opened as any channel opens one
            [(case, _, _)] = await cases.create_cases(ctx, [cases.NewCase(
                "Ławka", "b", "email", contacts=(("email", "jan@example.pl"),))], confirm=False)
        number = case.number
        try:
            if action == "case.assign":
                done: object = await cases.assign(ctx, number, people["colleague"], actor)
            else:
                done = await cases.staff_event(
                    ctx, number, actor, status="in_progress" if action == "case.status" else None,
                    note="Słowo", public=action != "case.note", author=actor.person)
        except audit.Refused as refused:
            done = refused
        return number, done
    number = await _announced(gw, people["author"].id, published=action.endswith("retract"))
    try:
        if action.endswith("cancel"):
            done = await announcements.cancel(ctx, number, actor)
        else:
            done = await announcements.retract(ctx, number, actor)
    except audit.Refused as refused:
        done = refused
    return f"announcement:{number}", done


async def test_staff_actions_by_actor_kind(gw: Gateway) -> None:
    """Every staff action's use-case — the one the API, the console, the bot and mail
    call — decides who may, by one rule each: allowed, it acts and writes one audit entry
    (in its own transaction); refused, it raises `Refused("forbidden")`, changes nothing
    and writes nothing."""
    from handlers import audit
    from store.models import AuditEntry

    people: dict = {}
    actors = {}
    for who, (roles, units, scopes) in ACTORS.items():
        if scopes is None:
            person_id = await gw.person(who, roles, email=f"{who}@milanowek.example",
                                        units=units)
            people[who] = await Person.get(id=person_id)
            actors[who] = audit.Actor.of(people[who], "console")
        else:
            actors[who] = audit.Actor(label=who, source="api", scopes=frozenset(scopes))
    wrong = []
    for action, allowed in MAY.items():
        for who, actor in actors.items():
            obj, done = await _act(gw, action, actor, people)
            refused = isinstance(done, audit.Refused)
            trail = await AuditEntry.filter(object=obj, action=action).count()
            if refused != (who not in allowed) or trail != (0 if refused else 1) or (
                    refused and done.reason != "forbidden"):  # type: ignore[union-attr]
                wrong.append((action, who, done, trail))
    assert not wrong, wrong


async def test_a_withdrawal_in_the_wrong_state_is_refused_as_a_conflict(gw: Gateway) -> None:
    """Cancelling a published announcement or retracting a scheduled one: refused by the
    use-case as a conflict (409 in the API, the console's conflict page), nothing audited."""
    from handlers import announcements, audit

    key = audit.Actor(label="key", source="api", scopes=frozenset({"announce"}))
    author = await gw.person("Autor", ["staff"], email="autor@milanowek.example",
                             units=["urzad"])
    for published, use_case in ((True, announcements.cancel), (False, announcements.retract)):
        number = await _announced(gw, author, published=published)
        with pytest.raises(audit.Refused) as refused:
            await use_case(gw.services, number, key)
        assert refused.value.reason == "conflict"
    assert await announcements.cancel(gw.services, 10**6, key) is None  # no such one
