"""Concurrent hook requests share one transaction (#12): the batches of one feed are
applied together — one read and one insert for the whole group — while each request is
still answered for its own batch, as if the requests had come one after another."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from tortoise.transactions import in_transaction

from gateway.hooks import HookWork, apply_hooks
from handlers import attendance, grades, library
from store.models import Attendance, Grade, HookDelivery, Loan, Outbox
from tests.conftest import REGISTER_SECRET, Gateway
from tests.test_grades import family, grade


def counting(module: Any, calls: list[int]):  # type: ignore[no-untyped-def]
    """The module's `apply_batches`, noting how many batches each call brought."""
    async def apply(ctx: Any, batches: list[Any]) -> list[dict[str, Any]]:
        calls.append(len(batches))
        return await module.apply_batches(ctx, batches)
    return apply


async def test_a_group_applies_each_feed_once_and_answers_each_request(gw: Gateway) -> None:
    await family(gw)
    await HookDelivery.create(webhook_id="register:old", source="register",
                              response={"accepted": 7}, received_at=gw.clock.now())
    grade_calls: list[int] = []
    loan_calls: list[int] = []
    apply_grades, apply_loans = counting(grades, grade_calls), counting(library, loan_calls)

    def parsed(*items: dict) -> list[Any]:
        return grades.parse_batch({"grades": list(items)})

    loans = library.parse_batch({"loans": [{"id": "L1", "card": "K1", "title": "Lalka",
                                            "due": "2026-12-01"}]})
    works = [
        HookWork("register:a", "register", apply_grades, parsed(grade(1, value="3"))),
        HookWork("library:b", "library", apply_loans, loans),
        HookWork("register:c", "register", apply_grades, parsed(grade(1, value="4"))),
        HookWork("register:a", "register", apply_grades, parsed(grade(9))),  # same id again
        HookWork("register:old", "register", apply_grades, parsed(grade(8))),  # seen before
        HookWork("register:d", "register", apply_grades, parsed(grade(1, value="4"),
                                                                  grade(2, student="NOPE"))),
        HookWork("register:e", "register", apply_grades, parsed(grade(3))),
    ]
    async with in_transaction():
        answers = await apply_hooks(gw.services, works)
    assert grade_calls == [4] and loan_calls == [1]  # one call per feed for the group
    first, loan, correction, again, old, unchanged, third = answers
    assert (first["created"], first["corrected"], first["notifications"]) == (1, 0, 1)
    assert loan["created"] == 1 and loan["unknown_cards"] == ["K1"]
    # the second request sees the first one's row, as if it had come after it
    assert (correction["created"], correction["corrected"]) == (0, 1)
    assert again == {**first, "replayed": True} and old == {"accepted": 7, "replayed": True}
    assert (unchanged["unchanged"], unchanged["unknown_students"]) == (1, ["NOPE"])
    assert third["created"] == 1
    stored = await Grade.get(id="G1")
    assert (stored.value, stored.revision) == ("4", 2)
    assert not await Grade.filter(id__in=["G8", "G9"]).exists()
    assert await Loan.filter(id="L1").exists()
    assert set(await HookDelivery.all().values_list("webhook_id", flat=True)) == {
        "register:old", "register:a", "library:b", "register:c", "register:d", "register:e"}
    await gw.drain()
    texts = gw.botapi.texts_to(4001)
    # the first request's message shows the grade as that request sent it, the next one
    # the correction; the unchanged re-send tells nothing
    assert any("Matematyka: <b>3</b>" in t and "1 nowa ocena" in t for t in texts)
    assert any("1 poprawiona ocena" in t and "Matematyka: <b>4</b>" in t for t in texts)
    assert await Outbox.filter(idempotency_key__contains="grades:").count() == 3


async def test_attendance_without_gathering_tells_each_request_in_a_group(gw: Gateway) -> None:
    gw.services.attendance_gather = gw.services.attendance_gather * 0
    await family(gw)

    def entries(n: int, status: str) -> list[Any]:
        return attendance.parse_batch({"attendance": [{
            "id": f"A{n}", "student": "S1", "date": "2026-11-25", "period": n,
            "status": status}]})

    works = [HookWork(f"register:{n}", "register", attendance.apply_batches, batch)
             for n, batch in enumerate([entries(1, "absent"), entries(2, "late"),
                                        entries(1, "absent"), entries(3, "present")])]
    async with in_transaction():
        answers = await apply_hooks(gw.services, works)
    assert [a["notifications"] for a in answers] == [1, 1, 0, 0]
    assert [a["created"] for a in answers] == [1, 1, 0, 1]
    assert answers[2]["unchanged"] == 1
    assert await Attendance.all().count() == 3


async def test_concurrent_requests_over_http_each_get_their_own_answer(gw: Gateway) -> None:
    await family(gw)

    async def push(n: int) -> dict[str, Any]:
        body = json.dumps({"grades": [grade(n), grade(100 + n % 3)]}).encode()
        resp = await gw.client.post("/hooks/register/grades", data=io.BytesIO(body),
                                    headers=gw.signed(body, REGISTER_SECRET, f"many-{n}"))
        assert resp.status == 200, await resp.text()
        return await resp.json()

    answers = await asyncio.gather(*(push(n) for n in range(30)))
    assert all(a["accepted"] == 2 for a in answers)
    # G100..G102 are each created by exactly one request and unchanged for the rest
    assert sum(a["created"] for a in answers) == 33
    assert sum(a["unchanged"] for a in answers) == 27
    assert await Grade.all().count() == 33
