"""Issue #13: the console's other sections — composing an announcement with the audience
counted before sending, its page counting up; the library's page; people with a QR letter;
RODO export and erasure (console and command line); health; the audit trail's filters."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys

from gateway.jobs import run_job
from handlers import rodo
from handlers.cases import contacts_of
from store.models import (
    Announcement,
    AuditEntry,
    Case,
    CaseEvent,
    Identity,
    JobRun,
    Outbox,
    Person,
)
from tests.conftest import Gateway, make_mail
from tests.panel import csrf_of, sign_in, staff_member


async def test_compose_count_preview_send_and_count_up(gw: Gateway) -> None:
    await staff_member(gw, "sekretariat@milanowek.example", ["staff"], ["szkola-2"],
                       name="Sekretariat")
    for n in range(3):
        await gw.linked(5000 + n, f"Nauczyciel {n}", ["staff"], units=["szkola-2"])
    await gw.person("Ktoś z urzędu", ["staff"], units=["urzad"], email="u@example.org")
    client = await sign_in(gw, "sekretariat@milanowek.example")
    page = await (await client.get("/panel/ogloszenia")).text()
    assert 'name="unit:szkola-2"' in page and 'name="unit:urzad"' not in page  # own units
    form = {"csrf": csrf_of(page), "tytul": "Rada pedagogiczna", "tresc": "W czwartek o **15**.",
            "unit:szkola-2": "szkola-2"}
    preview = await (await client.post("/panel/ogloszenia/podglad", data=form)).text()
    assert "Trafi do 4 osób" in preview  # three teachers and the secretary
    assert "Rada pedagogiczna" in preview and "W czwartek" in preview
    assert await Announcement.all().count() == 0  # nothing sent by a preview
    resp = await client.post("/panel/ogloszenia", data=form, allow_redirects=False)
    assert resp.status == 303
    page_url = resp.headers["Location"]
    counted = await (await client.get(page_url)).text()
    assert 'http-equiv="refresh"' in counted  # scheduled: the page reloads itself
    await run_job(gw.services, "scheduled-announcements")  # the publisher's work
    counted = await (await client.get(page_url)).text()
    assert re.search(r'id="licznik-odbiorcy">4<', counted)
    assert re.search(r'id="licznik-kolejka">[1-9]', counted)
    await gw.drain()
    gw.clock.advance(seconds=1)
    await gw.drain()
    counted = await (await client.get(page_url)).text()
    sent = int(re.search(r'id="licznik-wyslane">(\d+)<', counted).group(1))
    assert sent == await Outbox.filter(cause__startswith="ann:", status="sent").count() >= 3
    assert await AuditEntry.filter(action="announcement.create", source="console").count() == 1
    # someone else's unit is refused, with the reason shown
    refused = await client.post("/panel/ogloszenia/podglad",
                                data={**form, "unit:urzad": "urzad"})
    assert refused.status == 400 and "swoich jednostek" in await refused.text()


async def test_library_page_lists_readers_to_phone_and_prints_without_menu(gw: Gateway) -> None:
    await staff_member(gw, "biblioteka@milanowek.example", ["librarian"], [], name="Bibliotekarka")
    await JobRun.create(job="overdue-reminders", due="2026-11-25", started_at=gw.clock.now(),
                        finished_at=gw.clock.now(), summary={
                            "messages": 3, "loans": 5, "unreachable": [
                                {"card": "K-9", "name": "Zofia Bez Telefonu",
                                 "level": "overdue-7@2026-11-18", "titles": ["Lalka"]}]})
    client = await sign_in(gw, "biblioteka@milanowek.example")
    html = await (await client.get("/panel/biblioteka")).text()
    assert "Zofia Bez Telefonu" in html and "7 dni po terminie" in html and "Lalka" in html
    css = await (await client.get("/static/panel.css")).text()
    assert "@media print" in css


async def test_people_qr_letter_export_and_erase(gw: Gateway) -> None:
    await staff_member(gw, "admin@milanowek.example", ["admin"], [], name="Administratorka")
    parent = await gw.linked(6001, "Ewa Rodzic", ["parent"], email="ewa@example.org")
    await gw.mail(make_mail("Wycinka drzewa", "Proszę o zgodę na wycinkę.",
                            sender="Ewa Rodzic <ewa@example.org>"))
    number = (await Case.get(subject="Wycinka drzewa")).number
    client = await sign_in(gw, "admin@milanowek.example")
    found = await (await client.get("/panel/ludzie", params={"szukaj": "ewa@exa"})).text()
    assert f"/panel/ludzie/{parent}" in found
    page = await (await client.get(f"/panel/ludzie/{parent}")).text()
    letter = await (await client.post(f"/panel/ludzie/{parent}/kod",
                                      data={"csrf": csrf_of(page)})).text()
    assert "<svg" in letter and "oceny" in letter and "start=" in letter
    resp = await client.post(f"/panel/ludzie/{parent}/eksport", data={"csrf": csrf_of(page)})
    exported = json.loads(await resp.text())
    assert exported["person"]["name"] == "Ewa Rodzic"
    assert exported["addresses"]["email"] == ["ewa@example.org"]
    assert [c["number"] for c in exported["cases"]] == [number]
    assert "Proszę o zgodę" in exported["cases"][0]["body"]
    resp = await client.post(f"/panel/ludzie/{parent}/usun", allow_redirects=False,
                             data={"csrf": csrf_of(page), "potwierdzenie": "nie"})
    assert resp.status == 400 and await Person.exists(id=parent)
    resp = await client.post(f"/panel/ludzie/{parent}/usun", allow_redirects=False,
                             data={"csrf": csrf_of(page), "potwierdzenie": str(parent)})
    assert resp.status == 303
    assert not await Person.exists(id=parent) and not await Identity.exists(person_id=parent)
    case = await Case.get(number=number)  # kept, without the resident
    assert await contacts_of(case) == set() and "zgodę" not in case.body
    assert case.subject == rodo.ERASED and case.status == "received"  # the record stays
    assert not await CaseEvent.filter(case_id=number, text__icontains="zgodę").exists()
    assert not await Outbox.filter(recipient="ewa@example.org").exists()
    html = await (await client.get("/panel/sprawy", params={"szukaj": "zgode"})).text()
    assert number not in html  # the index forgot what the resident wrote
    entry = await AuditEntry.get(action="person.erase")
    assert entry.object == f"person:{parent}" and entry.source == "console"
    audit_page = await (await client.get("/panel/audyt", params={"akcja": "person.erase"})).text()
    assert "usunięcie danych (RODO)" in audit_page and "Administratorka" in audit_page


async def test_health_at_a_glance(gw: Gateway) -> None:
    await staff_member(gw, "admin@milanowek.example", ["admin"], [], name="Administratorka")
    client = await sign_in(gw, "admin@milanowek.example")
    html = await (await client.get("/panel/zdrowie")).text()
    assert "Kolejka wiadomości" in html and "overdue-reminders" in html
    assert "e-mail" in html and "Telegram" in html


async def _cli(gw: Gateway, *args: str, stdin: str = "") -> tuple[int, str]:
    """The real command in its own process, on the test's store."""
    env = {**os.environ, "EMIL_DATABASE_URL": gw.settings.database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    return process.returncode or 0, output.decode()


async def test_export_and_erase_from_the_command_line(gw: Gateway, tmp_path
                                                      ) -> None:  # type: ignore[no-untyped-def]
    """`emilanowek export|erase PERSON_ID`, confirmation asked, both audited."""
    person = await gw.person("Jan Do Usunięcia", ["citizen"], email="jan.u@example.org")
    out = tmp_path / "export.json"
    code, output = await _cli(gw, "export", str(person), "--out", str(out))
    assert code == 0, output
    assert json.loads(out.read_text())["person"]["name"] == "Jan Do Usunięcia"
    code, output = await _cli(gw, "erase", str(person), stdin="7\n")
    assert code != 0 and "not confirmed" in output
    assert await Person.exists(id=person)
    code, output = await _cli(gw, "erase", str(person), stdin=f"{person}\n")
    assert code == 0, output
    assert not await Person.exists(id=person)
    sources = await AuditEntry.filter(object=f"person:{person}").values_list("action", "source")
    assert ("person.export", "cli") in sources and ("person.erase", "cli") in sources
