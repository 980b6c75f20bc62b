"""A register that sends a whole term at once (#12): tens of thousands of records in one
signed call are accepted — every read of them is chunked below the databases' limits on
query parameters (SQLite 32,766; PostgreSQL's protocol 32,767)."""

from __future__ import annotations

import io
import json

from store.models import Attendance
from tests.conftest import REGISTER_SECRET, Gateway
from tests.test_grades import family


async def test_forty_thousand_entries_in_one_call(gw: Gateway) -> None:
    await family(gw)
    items = [{"id": f"A{n}", "student": "S1", "date": "2026-11-25", "period": n % 8,
              "status": "present"} for n in range(40_000)]
    body = json.dumps({"attendance": items}).encode()
    resp = await gw.client.post("/hooks/register/attendance", data=io.BytesIO(body),
                                headers=gw.signed(body, REGISTER_SECRET, "term"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["created"] == 40_000
    assert await Attendance.all().count() == 40_000
    # and again: every one of them is found, nothing changes
    resp = await gw.client.post("/hooks/register/attendance", data=io.BytesIO(body),
                                headers=gw.signed(body, REGISTER_SECRET, "term-again"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["unchanged"] == 40_000
