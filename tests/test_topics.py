"""Issue #20: lesson topics — the signed register hook, `/tematy` for one and for several
children, nothing of another class, and the `topics` notice off by default, on as the
daily digest."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

from gateway.imports import run_import
from gateway.jobs import run_job
from store.models import DigestItem, LessonTopic, Outbox
from tests.conftest import REGISTER_SECRET, Gateway
from tests.doubles.botapi import callback_update

#: the school days before the clock's Wednesday 25 November 2026, oldest first: eight
#: of them, one more than `/tematy` shows
SCHOOL_DAYS = [date(2026, 11, 16) + timedelta(days=d) for d in (0, 1, 2, 3, 4, 7, 8, 9)]


async def post(gw: Gateway, body: dict, hook_id: str, secret: str = REGISTER_SECRET
               ):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    return await gw.client.post("/hooks/register/topics", data=io.BytesIO(raw),
                                headers=gw.signed(raw, secret, hook_id))


def topic(n: int, day: date, subject: str = "matematyka", class_name: str = "4b",
          text: str | None = None, period: int = 1) -> dict:
    return {"id": f"T{n}", "class": class_name, "subject": subject, "date": day.isoformat(),
            "period": period, "topic": text or f"Temat {n}", "teacher": "p. Kowalska"}


async def family(gw: Gateway, chat: int, students: list[tuple[str, str, str]]) -> int:
    parent = await gw.linked(chat, f"Rodzic {chat}", roles=["parent"])
    for student_id, name, class_name in students:
        resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
            "id": student_id, "name": name, "class": class_name, "guardians": [parent]})
        assert resp.status == 201, await resp.text()
    return parent


async def a_fortnight_of_4b(gw: Gateway) -> None:
    """Maths every school day, Polish on the last one, a lesson still to come, and 5a's."""
    items = [topic(n, day, text=f"Ułamki, lekcja {n}") for n, day in enumerate(SCHOOL_DAYS)]
    items += [topic(20, SCHOOL_DAYS[-1], "język polski", text="„Lalka” — bohaterowie", period=2),
              topic(21, date(2026, 11, 26), text="Jutrzejszy temat"),
              topic(22, SCHOOL_DAYS[-1], "historia", "5a", text="Bitwa pod Grunwaldem")]
    resp = await post(gw, {"topics": items}, "tp-fortnight")
    assert resp.status == 200, await resp.text()


async def test_the_hook_is_signed_stored_by_id_replayed_and_checked(gw: Gateway) -> None:
    body = {"topics": [topic(1, SCHOOL_DAYS[-1], text="Dodawanie ułamków")]}
    resp = await post(gw, body, "tp-1", secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    assert resp.status == 401
    resp = await post(gw, body, "tp-1")
    assert resp.status == 200
    assert (await resp.json())["created"] == 1
    stored = await LessonTopic.get(id="T1")
    assert (stored.class_name, stored.period, stored.topic, stored.teacher) == (
        "4b", 1, "Dodawanie ułamków", "p. Kowalska")
    # the same delivery again: its first answer, nothing applied twice
    again = await post(gw, {"topics": [topic(1, SCHOOL_DAYS[-1], text="Inny")]}, "tp-1")
    assert (await again.json())["replayed"] is True
    assert (await LessonTopic.get(id="T1")).topic == "Dodawanie ułamków"
    # a new delivery of the same id updates it
    resp = await post(gw, {"topics": [topic(1, SCHOOL_DAYS[-1], text="Odejmowanie ułamków")]},
                      "tp-2")
    assert (await resp.json())["updated"] == 1
    assert (await LessonTopic.get(id="T1")).topic == "Odejmowanie ułamków"
    assert await LessonTopic.all().count() == 1
    # bad input: 400 naming the field, nothing written
    for bad, field in (({"topic": "x" * 501}, "topics[1].topic"),
                       ({"teacher": "x" * 201}, "topics[1].teacher"),
                       ({"subject": "x" * 101}, "topics[1].subject"),
                       ({"class": "x" * 33}, "topics[1].class"),
                       ({"id": "x" * 65}, "topics[1].id"),
                       ({"period": "trzecia"}, "topics[1].period"),
                       ({"period": 21}, "topics[1].period"),
                       ({"date": "25.11.2026"}, "topics[1].date"),
                       ({"topic": ""}, "topics[1].topic")):
        items = [topic(2, SCHOOL_DAYS[0]), {**topic(3, SCHOOL_DAYS[0]), **bad}]
        resp = await post(gw, {"topics": items}, f"tp-bad-{field}-{len(str(bad))}")
        assert resp.status == 400, bad
        assert (await resp.json())["error"]["field"] == field
    resp = await post(gw, {"topics": "T1"}, "tp-not-a-list")
    assert (await resp.json())["error"]["field"] == "topics"
    assert await LessonTopic.all().count() == 1


async def test_topics_of_one_child_for_the_last_seven_school_days(gw: Gateway) -> None:
    parent = await family(gw, 5001, [("U1", "Ala", "4b")])
    await a_fortnight_of_4b(gw)
    [shown] = await gw.tg(5001, "/tematy")
    assert "Ala (4b)" in shown and "z 7 ostatnich dni nauki" in shown
    assert "matematyka" in shown and "język polski" in shown
    assert "wt. 17.11, lekcja 1: Ułamki, lekcja 1" in shown
    assert "śr. 25.11, lekcja 2: „Lalka” — bohaterowie" in shown
    assert "lekcja 0" not in shown  # 16 November is the eighth school day back
    assert "Jutrzejszy" not in shown and "Grunwald" not in shown
    assert shown.index("język polski") < shown.index("matematyka")  # by subject
    # in English, by the English command
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"language": "en"})
    assert resp.status == 200, await resp.text()
    [shown] = await gw.tg(5001, "/topics")
    assert "lesson topics of the last 7 school days" in shown
    assert "Tue 17 Nov, lesson 1: Ułamki, lekcja 1" in shown


async def test_two_children_pick_one_and_another_class_sees_nothing(gw: Gateway) -> None:
    await family(gw, 5002, [("U2", "Igor", "4b"), ("U3", "Iga", "5a")])
    await family(gw, 5003, [("U4", "Obcy", "5a")])
    await a_fortnight_of_4b(gw)
    [pick] = await gw.tg(5002, "/tematy")
    assert "Masz 2 dzieci" in pick and "Czyje tematy lekcji" in pick
    keyboard = gw.botapi.messages_to(5002)[-1].params["reply_markup"]["inline_keyboard"]
    assert [(row[0]["text"], row[0]["callback_data"]) for row in keyboard] == [
        ("Iga (5a)", "topics:U3"), ("Igor (4b)", "topics:U2")]
    await gw.update(callback_update(5002, "topics:U2"))
    assert "„Lalka” — bohaterowie" in gw.botapi.texts_to(5002)[-1]
    await gw.update(callback_update(5002, "topics:U3"))
    iga = gw.botapi.texts_to(5002)[-1]
    assert "Bitwa pod Grunwaldem" in iga and "Ułamki" not in iga
    # a guardian in 5a only: their own child's class, nothing of 4b, not even by button
    [own] = await gw.tg(5003, "/tematy")
    assert "Obcy (5a)" in own and "Grunwald" in own and "Ułamki" not in own
    await gw.update(callback_update(5003, "topics:U2"))
    assert "Nie możemy pokazać" in gw.botapi.texts_to(5003)[-1]
    # a class with no topics yet says so
    await family(gw, 5004, [("U5", "Nowy", "1a")])
    [empty] = await gw.tg(5004, "/tematy")
    assert "Brak zapisanych tematów" in empty


async def test_the_notice_is_off_by_default_and_on_as_the_daily_digest(gw: Gateway) -> None:
    parent = await family(gw, 5005, [("U6", "Hania", "4b")])
    before = len(gw.botapi.texts_to(5005))
    resp = await post(gw, {"topics": [topic(30, SCHOOL_DAYS[-1], text="Pole prostokąta")]},
                      "tp-30")
    assert (await resp.json())["notifications"] == 0
    await gw.drain()
    assert len(gw.botapi.texts_to(5005)) == before
    assert await DigestItem.filter(person_id=parent).count() == 0
    [settings] = await gw.tg(5005, "/ustawienia")
    assert "Tematy lekcji: wyłączone" in settings
    # turned on in the bot, as the daily summary
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"digest_hour": 18})
    assert resp.status == 200, await resp.text()
    [settings] = await gw.tg(5005, "/ustawienia tematy dzienny")
    assert "Tematy lekcji: w podsumowaniu dnia o 18:00" in settings
    before = len(gw.botapi.texts_to(5005))
    resp = await post(gw, {"topics": [topic(31, SCHOOL_DAYS[-1], "przyroda",
                                            text="Obieg wody", period=3)]}, "tp-31")
    assert (await resp.json())["notifications"] == 1
    await gw.drain()
    assert len(gw.botapi.texts_to(5005)) == before  # not now: in the evening
    gw.clock.set(gw.clock.now().replace(hour=17, minute=1))  # 18:01 in Milanówek
    assert (await run_job(gw.services, "school-digest"))["digests"] == 1
    await gw.drain()
    digest = gw.botapi.texts_to(5005)[-1]
    assert "Podsumowanie dnia ze szkoły" in digest and "Tematy lekcji" in digest
    assert "Klasa 4b — przyroda: Obieg wody" in digest
    assert await Outbox.filter(cause__startswith="topics:").count() == 0


async def test_topics_by_csv_with_row_numbered_errors(gw: Gateway, tmp_path: Path) -> None:
    csv = tmp_path / "topics.csv"
    csv.write_text("id,class,subject,date,period,topic,teacher\n"
                   "C1,4b,fizyka,2026-11-24,3,Prędkość średnia,p. Lis\n"
                   "C2,4b,fizyka,2026-11-24,trzecia,Ruch,\n", encoding="utf-8")
    report = await run_import(gw.services, "topics", str(csv), progress=False)
    assert report.applied == 1 and report.errors == [
        "line 3: 'topics[0].period' must be a lesson number 0–20"]
    stored = await LessonTopic.get(id="C1")
    assert (stored.period, stored.topic, stored.teacher) == (3, "Prędkość średnia", "p. Lis")
