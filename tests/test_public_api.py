"""Issue #11, "the public case API leaks and spams" and "access codes": what an
anonymous caller gets, how often, and what a retry after a lost answer does."""

from __future__ import annotations

import logging
import re

from store.models import Case
from tests.conftest import Gateway


async def test_naming_a_residents_address_reveals_nothing_of_their_case(gw: Gateway) -> None:
    resident = await gw.person("Anna", email="anna@example.pl")
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Podstęp", "body": "b",
                                                       "email": "anna@example.pl"})
    body = await resp.json()
    assert resp.status == 201 and "access_code" not in body
    assert (await Case.get()).person_id == resident
    # the code went to Anna's mailbox only
    await gw.drain()
    [mail] = gw.sent_mail()
    assert mail["To"] == "anna@example.pl"
    # an anonymous case without an address gets its code (its only key) ...
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Latarnia", "body": "b"})
    assert re.fullmatch(r"([A-Z2-9]{4}-){3}[A-Z2-9]{4}", (await resp.json())["access_code"])
    # ... and so does the town's web form backend, with a `cases` key
    resp = await gw.client.post("/api/v1/cases", headers=gw.admin,
                                json={"subject": "Formularz", "body": "b", "email": "x@example.pl"})
    assert "access_code" in await resp.json()


async def test_anonymous_submissions_are_rate_limited_per_client_and_recipient(
        gw: Gateway) -> None:
    statuses = []
    for n in range(8):
        resp = await gw.client.post("/api/v1/cases", json={
            "subject": f"S{n}", "body": "b", "email": "ofiara@example.pl"})
        statuses.append(resp.status)
        if resp.status == 429:
            assert int(resp.headers["Retry-After"]) > 0
            assert (await resp.json())["error"]["code"] == "rate_limited"
    assert statuses[:3] == [201, 201, 201] and statuses[-1] == 429
    await gw.drain()
    assert len(gw.sent_mail()) == statuses.count(201) <= 5  # no mail bomb through us
    # a keyed caller is not limited
    for n in range(10):
        resp = await gw.client.post("/api/v1/cases", headers=gw.admin,
                                    json={"subject": f"K{n}", "body": "b"})
        assert resp.status == 201


async def test_the_same_idempotency_key_returns_the_same_case(gw: Gateway) -> None:
    headers = {"Idempotency-Key": "form-7f3a"}
    first = await gw.client.post("/api/v1/cases", headers=headers,
                                 json={"subject": "Raz", "body": "b"})
    again = await gw.client.post("/api/v1/cases", headers=headers,
                                 json={"subject": "Raz", "body": "b"})
    assert first.status == again.status == 201
    assert await first.json() == await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await Case.all().count() == 1
    # after 24 hours the key names a new request
    gw.clock.advance(hours=25)
    later = await gw.client.post("/api/v1/cases", headers=headers,
                                 json={"subject": "Raz", "body": "b"})
    assert (await later.json())["number"] != (await first.json())["number"]


async def test_wrong_access_codes_are_limited_and_logged_without_the_code(
        gw: Gateway, caplog) -> None:  # type: ignore[no-untyped-def]
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Moja", "body": "b"})
    created = await resp.json()
    number, code = created["number"], created["access_code"]
    caplog.set_level(logging.WARNING)
    statuses = []
    for n in range(12):
        resp = await gw.client.get(f"/api/v1/cases/{number}?code=WRNG-CODE-{n:04d}-AAAA")
        statuses.append(resp.status)
    assert statuses[0] == 404 and statuses[-1] == 429
    assert "WRNG" not in caplog.text and number in caplog.text
    # the right code, from the same client, also waits: the limit is the client's
    resp = await gw.client.get(f"/api/v1/cases/{number}?code={code}")
    assert resp.status == 429
    # the code still works typed in lower case and without dashes elsewhere (unit rule)
    from handlers.cases import code_matches, hash_code

    key = gw.services.code_key
    assert code_matches(key, hash_code(key, code), code.lower().replace("-", ""))


async def test_mail_opening_cases_is_rate_limited_per_sender_with_450(gw: Gateway) -> None:
    import aiosmtplib

    from tests.conftest import make_mail

    codes = []
    for n in range(8):
        try:
            code, _ = await gw.smtp(make_mail(f"Zgłoszenie {n}", "treść", sender="bot@spam.example"),
                                    sender="bot@spam.example")
        except aiosmtplib.SMTPRecipientRefused as error:
            code = error.code
        codes.append(code)
    assert codes[:5] == [250] * 5 and codes[-1] == 450  # the sender's server retries later
    code, _ = await gw.smtp(make_mail("Inna osoba", "treść"), sender="jan@example.pl")
    assert code == 250


async def test_the_bot_says_slow_down_once_and_then_keeps_quiet(gw: Gateway) -> None:
    replies = []
    for _ in range(30):
        replies += await gw.tg(90_001, "/pomoc")
    slow = [r for r in replies if "Zwolnij" in r]
    assert len(slow) == 1 and len(replies) == 21  # 20 answers, one "zwolnij", then silence
