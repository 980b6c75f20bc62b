"""Issue #18, fault 2: every write to a case — the residents' page, the console, the API,
mail — runs in one transaction with its search-index update, so posts that meet lose
nothing: no 500, every attachment stored, every word findable, no status undone."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from store import search
from store.models import Attachment, Case, CaseEvent
from tests.conftest import PG_URL, Gateway, make_mail
from tests.panel import csrf_of, sign_in, staff_member
from tests.test_supervision import eventually


def word(kind: str, n: int) -> str:
    """A word that is no other's prefix (search matches by prefix)."""
    return f"{kind}{n:02d}q"


async def resident_on_the_page(gw: Gateway, client: TestClient) -> tuple[str, str, str]:
    """A case opened by mail; the resident follows the mail's link. Returns the number,
    the page's CSRF token and the access code."""
    [confirmation] = await gw.mail(make_mail("Zalana piwnica", "Woda w piwnicy przy Wiejskiej"))
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    code = re.search(r"Kod dostępu: ([A-Z0-9-]+)", text).group(1)
    number = re.search(r"UM-\d{4}-\d{6}", link).group(0)
    html = await (await client.get(link)).text()
    return number, csrf_of(html), code


async def test_thirty_posts_at_once_lose_nothing(gw: Gateway, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    resident = await aiohttp_client(gw.client.server)
    number, page_csrf, code = await resident_on_the_page(gw, resident)
    await staff_member(gw)
    clerk = await sign_in(gw, "urzedniczka@milanowek.example",
                          await aiohttp_client(gw.client.server))
    panel_csrf = csrf_of(await (await clerk.get(f"/panel/sprawy/{number}")).text())
    # three follow-up mails wait in the inbox, handled while the posts run
    for n in range(3):
        assert (await gw.smtp(make_mail(f"Re: [{number}] Zalana piwnica",
                                        f"{word('poczta', n)} kod {code}")))[0] == 250

    async def from_the_page(n: int) -> int:
        form = FormData()
        form.add_field("csrf", page_csrf)
        form.add_field("message", f"Dosyłam {word('mieszkaniec', n)}")
        form.add_field("attachment", b"%PDF-" + bytes([n]) * 2000,
                       filename=f"{word('plik', n)}.pdf", content_type="application/pdf")
        resp = await resident.post(f"/sprawy/{number}/wiadomosc", data=form,
                                   allow_redirects=False)
        return resp.status

    async def from_the_console(n: int) -> int:
        path, form = ("notatka", {"tekst": f"Notatka {word('notatka', n)}"})
        if n % 4 == 3:
            path, form = ("status", {"status": "in_progress", "tekst": word("urzad", n)})
        resp = await clerk.post(f"/panel/sprawy/{number}/{path}", allow_redirects=False,
                                data={"csrf": panel_csrf, **form})
        return resp.status

    async def from_the_api(n: int) -> int:
        body = {"note": f"Z systemu {word('system', n)}", "public": n % 2 == 0}
        if n % 4 == 3:
            body["status"] = "in_progress"
        resp = await gw.client.post(f"/api/v1/cases/{number}/events", headers=gw.admin,
                                    json=body)
        return resp.status

    posts = ([from_the_page(n) for n in range(12)] + [from_the_console(n) for n in range(9)]
             + [from_the_api(n) for n in range(9)])
    statuses = await asyncio.gather(*posts, gw.drain())
    assert statuses[:12] == [303] * 12 and statuses[12:21] == [303] * 9, statuses
    assert statuses[21:30] == [201] * 9, statuses
    await gw.drain()

    files = await Attachment.filter(case_id=number).values_list("filename", flat=True)
    assert sorted(files) == sorted(f"{word('plik', n)}.pdf" for n in range(12))
    expected = ([word("mieszkaniec", n) for n in range(12)] + [word("plik", n) for n in range(12)]
                + [word("notatka", n) for n in range(9) if n % 4 != 3]
                + [word("urzad", n) for n in range(9) if n % 4 == 3]
                + [word("system", n) for n in range(9)] + [word("poczta", n) for n in range(3)])
    lost = [w for w in expected if number not in await search.matching(w)]
    assert lost == []
    assert await CaseEvent.filter(case_id=number).exclude(kind="created").count() == 33
    # a note written beside a status change does not put the old status back
    assert (await Case.get(number=number)).status == "in_progress"


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL's row locks (SQLite's one connection "
                                       "serialises the transactions)")
async def test_a_note_waits_for_a_status_change_and_keeps_it(gw: Gateway) -> None:
    """Another transaction (a second instance) changes the status and has not committed
    yet when a note arrives: the note waits for it and leaves the new status in place."""
    resp = await gw.client.post("/api/v1/cases", json={"subject": "Lampa", "body": "nie świeci"})
    number = (await resp.json())["number"]
    other = await asyncpg.connect(PG_URL.replace("postgres://", "postgresql://", 1))
    try:
        writing = other.transaction()
        await writing.start()
        await other.execute("UPDATE \"case\" SET status = 'in_progress' WHERE number = $1",
                            number)
        note = asyncio.ensure_future(gw.client.post(
            f"/api/v1/cases/{number}/events", headers=gw.admin,
            json={"note": "Przekazano elektrykom", "public": False}))

        async def note_waits_for_the_row() -> bool:
            await other.execute("SELECT pg_stat_clear_snapshot()")  # read anew in a transaction
            return bool(await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))

        await eventually(note_waits_for_the_row)
        await writing.commit()
        assert (await note).status == 201
    finally:
        await other.close()
    case = await Case.get(number=number)
    assert case.status == "in_progress"
    assert number in await search.matching("elektrykom")
