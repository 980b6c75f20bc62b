"""Issue #12: the school register beyond grades — attendance, remarks, homework and class
messages — through one fan-out, with per-type preferences and the bot commands."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gateway.imports import run_import
from gateway.jobs import run_job
from store.models import Attendance, DigestItem, Outbox
from tests.conftest import REGISTER_SECRET, Gateway
from tests.doubles.botapi import callback_update

DAY = "2026-11-25"


async def hook(gw: Gateway, feed: str, items: list[dict], hook_id: str):  # type: ignore[no-untyped-def]
    body = json.dumps({feed: items}).encode()
    return await gw.client.post(f"/hooks/register/{feed}", data=io.BytesIO(body),
                                headers=gw.signed(body, REGISTER_SECRET, hook_id))


async def family(gw: Gateway, chat: int, students: list[tuple[str, str, str]]) -> int:
    """A linked parent with (id, name, class) children."""
    parent = await gw.linked(chat, f"Rodzic {chat}", roles=["parent"])
    for student_id, name, class_name in students:
        resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
            "id": student_id, "name": name, "class": class_name, "guardians": [parent]})
        assert resp.status == 201, await resp.text()
    return parent


def entry(n: int, status: str, student: str = "S1", period: int | None = None) -> dict:
    return {"id": f"A{n}", "student": student, "date": DAY, "period": period or n,
            "status": status, "subject": "matematyka"}


async def test_attendance_arriving_close_together_is_one_message(gw: Gateway) -> None:
    await family(gw, 4001, [("S1", "Kasia Nowak", "4b")])
    before = len(gw.botapi.texts_to(4001))
    resp = await hook(gw, "attendance", [entry(1, "absent"), entry(2, "absent"),
                                         entry(3, "present")], "att-1")
    assert resp.status == 200, await resp.text()
    gw.clock.advance(minutes=4)
    await hook(gw, "attendance", [entry(4, "late")], "att-2")
    await gw.drain()
    assert len(gw.botapi.texts_to(4001)) == before  # still gathering
    gw.clock.advance(minutes=7)
    assert (await run_job(gw.services, "attendance-gather"))["batches"] == 1
    await gw.drain()
    [message] = gw.botapi.texts_to(4001)[before:]
    assert "Kasia Nowak (4b)</b>: 2 nieobecności, 1 spóźnienie" in message
    assert "25 listopada 2026, lekcja 1 (matematyka): nieobecność" in message
    assert "lekcja 3" not in message  # present: stored, never told
    assert await Attendance.filter(id="A3", status="present").exists()
    # the absence is excused later: told again as a correction
    await hook(gw, "attendance", [entry(1, "excused")], "att-3")
    gw.clock.advance(minutes=11)
    await run_job(gw.services, "attendance-gather")
    await gw.drain()
    correction = gw.botapi.texts_to(4001)[-1]
    assert "1 usprawiedliwiona nieobecność" in correction and "poprawka" in correction


async def test_without_gathering_each_batch_is_told_at_once(gw: Gateway) -> None:
    gw.services.attendance_gather = gw.services.attendance_gather * 0
    await family(gw, 4002, [("S2", "Jan Lis", "2a")])
    await hook(gw, "attendance", [entry(10, "late", "S2")], "att-10")
    await gw.drain()
    assert "1 spóźnienie" in gw.botapi.texts_to(4002)[-1]


async def test_homework_reaches_each_guardian_of_the_class_once(gw: Gateway) -> None:
    await family(gw, 4003, [("S3", "Ala", "5c"), ("S4", "Ola", "5c")])  # two children in 5c
    await family(gw, 4004, [("S5", "Piotr", "5c")])
    await family(gw, 4005, [("S6", "Zosia", "6a")])  # another class: nothing
    items = [{"id": "H1", "class": "5c", "subject": "matematyka", "kind": "test",
              "title": "Ułamki", "due": "2026-12-04"}]
    resp = await hook(gw, "homework", items, "hw-1")
    assert (await resp.json())["notifications"] == 2
    await gw.drain()
    for chat in (4003, 4004):
        [told] = [t for t in gw.botapi.texts_to(chat) if "Ułamki" in t]
        assert "sprawdzian (matematyka) w piątek 4 grudnia" in told
    assert not any("Ułamki" in t for t in gw.botapi.texts_to(4005))
    # the same again changes nothing; an unknown class is reported
    resp = await hook(gw, "homework", items + [{**items[0], "id": "H2", "class": "9z"}], "hw-2")
    assert (await resp.json())["unknown_classes"] == ["9z"]
    assert await Outbox.filter(cause__startswith="homework:").count() == 2


async def test_remarks_and_class_messages(gw: Gateway) -> None:
    await family(gw, 4006, [("S7", "Tomek", "3b")])
    await family(gw, 4007, [("S8", "Wiktor", "3b")])
    remark = {"id": "R1", "student": "S7", "kind": "positive", "text": "Pomoc kolegom",
              "teacher": "p. Kowalska", "recorded_at": "2026-11-25T10:00:00+01:00"}
    await hook(gw, "remarks", [remark], "rm-1")
    await hook(gw, "remarks", [remark], "rm-2")  # an identical re-send: nothing new
    await gw.drain()
    assert [t for t in gw.botapi.texts_to(4006) if "uwaga" in t][0].count("Pomoc kolegom") == 1
    assert len([t for t in gw.botapi.texts_to(4006) if "uwag" in t]) == 1
    assert not any("Pomoc" in t for t in gw.botapi.texts_to(4007))
    message = {"id": "M1", "class": "3b", "title": "Wycieczka", "body": "W piątek do muzeum.",
               "sender": "Wychowawczyni"}
    await hook(gw, "messages", [message], "msg-1")
    await gw.drain()
    for chat in (4006, 4007):
        assert "W piątek do muzeum." in gw.botapi.texts_to(chat)[-1]
    resp = await hook(gw, "messages", [{**message, "id": "M2", "student": "S7"}], "msg-2")
    assert resp.status == 400  # a class or a student, not both
    assert (await resp.json())["error"]["field"] == "messages[0].class"


async def test_preferences_per_notice_type_digest_and_off(gw: Gateway) -> None:
    parent = await family(gw, 4008, [("S9", "Hania", "1a")])
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"notices": {"remarks": "digest", "homework": "off"},
                                       "digest_hour": 18})
    assert resp.status == 200, await resp.text()
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"notices": {"remarks": "sometimes"}})
    assert (await resp.json())["error"]["field"] == "notices.remarks"
    before = len(gw.botapi.texts_to(4008))
    await hook(gw, "remarks", [{"id": "R9", "student": "S9", "kind": "negative",
                                "text": "Brak zadania", "teacher": "p. Nowak",
                                "recorded_at": "2026-11-25T09:00:00+01:00"}], "rm-9")
    await hook(gw, "homework", [{"id": "H9", "class": "1a", "subject": "plastyka",
                                 "kind": "homework", "title": "Laurka", "due": "2026-11-30"}],
               "hw-9")
    await gw.drain()
    assert len(gw.botapi.texts_to(4008)) == before  # digest and off: nothing now
    assert await DigestItem.filter(person_id=parent).count() == 1
    gw.clock.set(gw.clock.now().replace(hour=17, minute=1))  # 18:01 in Milanówek
    assert (await run_job(gw.services, "school-digest"))["digests"] == 1
    await gw.drain()
    digest = gw.botapi.texts_to(4008)[-1]
    assert "Podsumowanie dnia ze szkoły" in digest and "Hania: 1 nowa uwaga" in digest
    assert "Laurka" not in digest
    # the same preferences from the bot, shown back in Polish
    reply = (await gw.tg(4008, "/ustawienia obecności dzienny"))[-1]
    assert "Frekwencja: w podsumowaniu dnia o 18:00" in reply
    assert "Zadania i sprawdziany: wyłączone" in reply


async def test_bot_commands_show_only_ones_own_children(gw: Gateway) -> None:
    await family(gw, 4009, [("T1", "Igor", "2b"), ("T2", "Iga", "4a")])
    await family(gw, 4010, [("T3", "Obcy", "2b")])
    gw.services.attendance_gather = gw.services.attendance_gather * 0
    await hook(gw, "attendance", [entry(20, "absent", "T1")], "att-20")
    await hook(gw, "homework", [{"id": "H20", "class": "2b", "subject": "polski",
                                 "kind": "quiz", "title": "Ortografia", "due": "2026-11-27"}],
               "hw-20")
    await gw.drain()
    [pick] = await gw.tg(4009, "/obecnosci")
    assert "Masz 2 dzieci" in pick and "frekwencję" in pick
    await gw.update(callback_update(4009, "attendance:T1"))
    assert "lekcja 20" in gw.botapi.texts_to(4009)[-1]
    await gw.update(callback_update(4009, "homework:T1"))
    assert "w piątek 27 listopada: kartkówka (polski) — Ortografia" in gw.botapi.texts_to(4009)[-1]
    # another parent pressing a button of Igor's sees nothing of him
    await gw.update(callback_update(4010, "attendance:T1"))
    assert "Nie możemy pokazać" in gw.botapi.texts_to(4010)[-1]
    [own] = await gw.tg(4010, "/uwagi")
    assert "Obcy" in own and "Brak uwag" in own


async def test_attendance_by_csv_with_row_numbered_errors(gw: Gateway, tmp_path: Path) -> None:
    await family(gw, 4011, [("C1", "Ela", "1c")])
    csv = tmp_path / "attendance.csv"
    csv.write_text("id,student,date,period,status,subject\n"
                   f"X1,C1,{DAY},1,absent,fizyka\n"
                   f"X2,C1,{DAY},2,sick,fizyka\n", encoding="utf-8")
    report = await run_import(gw.services, "attendance", str(csv), progress=False)
    assert report.applied == 1 and report.errors == [
        "line 3: 'attendance[0].status' must be one of absent, late, excused, present"]
    again = await run_import(gw.services, "attendance", str(csv), progress=False)
    assert again.applied == 0 and again.unchanged == 1
