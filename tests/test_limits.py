"""Issue #11, "one request freezes everything" and "bad input gives 500s": every input has
a limit with a clear answer naming the field, checked before anything is written."""

from __future__ import annotations

import io
import json

import pytest

from handlers.addresses import normalise_email
from handlers.limits import json_depth_ok
from store.models import Case, Grade, Loan
from tests.conftest import LIBRARY_SECRET, Gateway
from tests.test_grades import family, grade, push


async def test_a_pathological_address_is_refused_at_once(gw: Gateway) -> None:
    # quadratic for the old pattern: ~260 s of a frozen event loop on this machine
    email = "a@" + "b." * 30_000 + " x"
    resp = await gw.client.post("/api/v1/cases", json={"subject": "S", "body": "B", "email": email})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["field"] == "email"
    # a quoted local part, the other form of the same attack
    resp = await gw.client.post("/api/v1/cases", json={
        "subject": "S", "body": "B", "email": '"' + "a" * 40_000 + '"@x.pl'})
    assert resp.status == 400


@pytest.mark.parametrize("value,expected", [
    ("Jan.Kowalski@Example.PL", "jan.kowalski@example.pl"),
    ("Jan <jan@example.pl>", "jan@example.pl"),
    ("zażółć@gęślą.pl", "zażółć@gęślą.pl"),
    ("a" * 65 + "@x.pl", None), ("a@" + "b" * 64 + ".pl", None), ("a@b", None),
    ("a..b@x.pl", None), ('"a b"@x.pl', None), ("a@-x.pl", None), ("", None),
    ("a@" + "b." * 200 + "pl", None),
])
def test_address_rules(value: str, expected: str | None) -> None:
    assert normalise_email(value) == expected


def test_json_depth_is_measured_outside_strings() -> None:
    assert json_depth_ok(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')
    assert not json_depth_ok(b"[" * 33 + b"]" * 33)


async def test_bodies_have_limits_per_route(gw: Gateway) -> None:
    big = {"subject": "S", "body": "x" * (70 * 1024)}
    resp = await gw.client.post("/api/v1/cases", json=big)
    assert resp.status == 413
    resp = await gw.client.post("/api/v1/cases", data=b"[" * 10_000,
                                headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "too_deep"
    # a keyed caller's case body has the text limit, named
    resp = await gw.client.post("/api/v1/cases/UM-2026-000001/events", headers=gw.admin,
                                json={"note": "x" * 100_001})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "note"
    assert await Case.all().count() == 0


async def test_every_field_is_checked_against_its_column(gw: Gateway) -> None:
    cases = [({"subject": "S", "body": "B", "category": "k" * 65}, "category"),
             ({"subject": "s" * 301, "body": "B"}, "subject")]
    for body, name in cases:
        resp = await gw.client.post("/api/v1/cases", json=body)
        assert resp.status == 400, (name, await resp.text())
        assert (await resp.json())["error"]["field"] == name
    resp = await gw.client.post("/api/v1/people", headers=gw.admin,
                                json={"name": "N", "roles": ["citizen"], "library_card": "K" * 65})
    assert (resp.status, (await resp.json())["error"]["field"]) == (400, "library_card")


async def test_a_too_long_grade_is_a_400_naming_it_and_nothing_is_applied(gw: Gateway) -> None:
    await family(gw)
    for extra, name in (({"value": "5" * 33}, "value"), ({"weight": "1" * 17}, "weight"),
                        ({"id": "G" * 65}, "id"), ({"student": "S" * 65}, "student")):
        item = {**grade(1), **extra}
        resp = await push(gw, [grade(2), item], f"msg_{name}")
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["error"]["field"] == f"grades[1].{name}"
    assert await Grade.all().count() == 0


async def test_a_too_long_loan_field_is_a_400(gw: Gateway) -> None:
    loan = {"id": "L1", "card": "K" * 65, "title": "Lalka", "due": "2026-12-01"}
    body = json.dumps({"loans": [loan]}).encode()
    resp = await gw.client.post("/hooks/library/loans", data=io.BytesIO(body),
                                headers=gw.signed(body, LIBRARY_SECRET, "loan_1"))
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "loans[0].card"
    loan = {"id": "L1", "card": "K1", "title": "Lalka", "due": "2026-12-01", "renewals": 2**40}
    body = json.dumps({"loans": [loan]}).encode()
    resp = await gw.client.post("/hooks/library/loans", data=io.BytesIO(body),
                                headers=gw.signed(body, LIBRARY_SECRET, "loan_2"))
    assert (resp.status, (await resp.json())["error"]["field"]) == (400, "loans[0].renewals")
    assert await Loan.all().count() == 0


async def test_numbers_past_the_database_are_a_400_not_a_500(gw: Gateway) -> None:
    """Found by schemathesis in CI: a guardian id of -6.8e19 reached SQLite (OverflowError)."""
    resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
        "id": "S1", "name": "N", "guardians": [7649, -68441057290266353664]})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "guardians"
