"""Grade notifications: signed hooks, who gets told, plurals, corrections, preferences."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from gateway.imports import run_import
from store.models import Grade, Identity, Outbox, Person, Student
from tests.conftest import REGISTER_SECRET, Gateway
from tests.doubles.botapi import callback_update

URL = "/hooks/register/grades"


def grade(n: int, student: str = "S1", value: str = "5", **extra) -> dict:
    return {"id": f"G{n}", "student": student, "subject": "Matematyka", "value": value,
            "recorded_at": "2026-11-24T10:15:00+01:00", **extra}


async def push(gw: Gateway, grades: list[dict], hook_id: str = "msg_1", **kw):
    body = json.dumps({"grades": grades}).encode()
    return await gw.client.post(URL, data=io.BytesIO(body),
                                headers=gw.signed(body, kw.get("secret", REGISTER_SECRET),
                                                  hook_id, kw.get("when")))


async def family(gw: Gateway, chat: int = 4001, student: str = "S1", name: str = "Kasia Nowak",
                 **person) -> int:
    parent = await gw.linked(chat, f"Rodzic {chat}", roles=["parent"], **person)
    resp = await gw.client.post("/api/v1/students", headers=gw.admin,
                                json={"id": student, "name": name, "class": "4b",
                                      "guardians": [parent]})
    assert resp.status == 201
    return parent


async def test_guardian_gets_one_message_with_polish_plurals(gw: Gateway) -> None:
    await family(gw)
    for count, phrase, start in ((1, "1 nowa ocena", 0), (2, "2 nowe oceny", 10),
                                 (5, "5 nowych ocen", 20)):
        resp = await push(gw, [grade(start + n) for n in range(count)], f"msg_{count}")
        assert resp.status == 200, await resp.text()
        await gw.drain()
        text = gw.botapi.texts_to(4001)[-1]
        assert f"Kasia Nowak (4b)</b>: {phrase}" in text
        assert text.count("Matematyka") == count
        assert "24 listopada 2026" in text


async def test_weight_category_and_english(gw: Gateway) -> None:
    parent = await family(gw)
    await Person.filter(id=parent).update(language="en")
    await push(gw, [grade(1, weight="3", category="Sprawdzian"), grade(2)])
    await gw.drain()
    text = gw.botapi.texts_to(4001)[-1]
    assert "2 new grades" in text and "(weight 3), Sprawdzian" in text
    assert "24 November 2026" in text


async def test_correction_is_announced_and_identical_resend_is_silent(gw: Gateway) -> None:
    await family(gw)
    await push(gw, [grade(1, value="3")], "a")
    await gw.drain()
    await push(gw, [grade(1, value="3")], "b")  # the register re-sends: nothing new
    await gw.drain()
    assert len(gw.botapi.texts_to(4001)) == 2  # link confirmation + first notice
    resp = await push(gw, [grade(1, value="4+")], "c")
    assert (await resp.json())["corrected"] == 1
    await gw.drain()
    assert "1 poprawiona ocena" in gw.botapi.texts_to(4001)[-1]
    assert await Grade.all().count() == 1
    assert (await Grade.get()).revision == 2


async def test_signature_cases(gw: Gateway) -> None:
    await family(gw)
    body = json.dumps({"grades": [grade(1)]}).encode()
    good = gw.signed(body, REGISTER_SECRET, "msg_x")
    assert (await gw.client.post(URL, data=body, headers={**good, "webhook-signature": "v1,AAAA"})
            ).status == 401
    assert (await gw.client.post(URL, data=body, headers={"Content-Type": "application/json"})
            ).status == 401
    stale = gw.signed(body, REGISTER_SECRET, "msg_y",
                      datetime.now(timezone.utc) - timedelta(minutes=6))
    assert (await gw.client.post(URL, data=body, headers=stale)).status == 401
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    assert (await push(gw, [grade(1)], "msg_z", secret=other)).status == 401
    tampered = body.replace(b'"5"', b'"1"')
    assert (await gw.client.post(URL, data=tampered, headers=good)).status == 401
    assert await Grade.all().count() == 0
    first = await gw.client.post(URL, data=body, headers=good)
    replay = await gw.client.post(URL, data=body, headers=good)
    assert first.status == replay.status == 200
    assert (await replay.json())["replayed"] is True
    await gw.drain()
    assert len(gw.botapi.texts_to(4001)) == 2


async def test_malformed_batch_is_refused_whole(gw: Gateway) -> None:
    await family(gw)
    resp = await push(gw, [grade(1), {"id": "G2", "student": "S1", "subject": "Fizyka",
                                      "recorded_at": "2026-11-24T10:00:00Z"}])
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "grades[1].value"
    resp = await push(gw, [grade(3, recorded_at="wczoraj")], "m2")
    assert (await resp.json())["error"]["field"] == "grades[0].recorded_at"
    body = b'{"grades": "nope"}'
    resp = await gw.client.post(URL, data=body, headers=gw.signed(body, REGISTER_SECRET, "m3"))
    assert (await resp.json())["error"]["field"] == "grades"
    assert await Grade.all().count() == 0


async def test_unknown_students_are_reported(gw: Gateway) -> None:
    await family(gw)
    resp = await push(gw, [grade(1), grade(2, student="NOPE")])
    body = await resp.json()
    assert body["unknown_students"] == ["NOPE"] and body["created"] == 1


async def test_hook_without_secret_answers_503(gw: Gateway) -> None:
    gw.settings.hook_secret_register = None
    assert (await push(gw, [grade(1)])).status == 503


async def test_only_guardians_are_told_and_can_ask(gw: Gateway) -> None:
    await family(gw, 4001, "S1", "Kasia")
    await family(gw, 4002, "S2", "Tomek")
    staff = await gw.linked(4003, "Pani Dyrektor", roles=["staff"])
    await push(gw, [grade(1, "S1"), grade(2, "S2", value="2")])
    await gw.drain()
    assert "Kasia" in gw.botapi.texts_to(4001)[-1] and "Tomek" not in gw.botapi.texts_to(4001)[-1]
    assert "Tomek" in gw.botapi.texts_to(4002)[-1]
    [mine] = await gw.tg(4001, "/oceny")
    assert "Kasia" in mine and "<b>5</b>" in mine
    # another parent pressing a forged button for someone else's child
    before = len(gw.botapi.texts_to(4002))
    await gw.update(callback_update(4002, "grades:S1"))
    [refusal] = gw.botapi.texts_to(4002)[before:]
    assert "Kasia" not in refusal and "Nie możemy" in refusal
    [unlinked] = await gw.tg(4999, "/oceny")
    assert "nie jest połączony" in unlinked
    [not_parent] = await gw.tg(4003, "/oceny")
    assert "niedostępne" in not_parent or "nie jest dostępne" in not_parent
    assert staff


async def test_child_picker_for_several_children(gw: Gateway) -> None:
    parent = await family(gw, 4101, "S1", "Ala")
    await gw.client.post("/api/v1/students", headers=gw.admin,
                         json={"id": "S9", "name": "Olek", "class": "1a", "guardians": [parent]})
    [pick] = await gw.tg(4101, "/oceny")
    assert "2 dzieci" in pick
    buttons = gw.botapi.messages_to(4101)[-1].params["reply_markup"]["inline_keyboard"]
    assert [b[0]["callback_data"] for b in buttons] == ["grades:S1", "grades:S9"]
    await push(gw, [grade(7, "S9", value="6")])
    await gw.drain()
    await gw.update(callback_update(4101, "grades:S9"))
    assert "Olek" in gw.botapi.texts_to(4101)[-1] and "<b>6</b>" in gw.botapi.texts_to(4101)[-1]


async def test_quiet_hours_delay_until_morning(gw: Gateway) -> None:
    await family(gw)
    gw.clock.set(datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc))  # 23:30 in Warsaw
    await push(gw, [grade(1)])
    await gw.drain()
    assert len(gw.botapi.texts_to(4001)) == 1  # only the link confirmation
    row = await Outbox.get(cause="grades:S1")
    assert row.next_attempt_at == datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)  # 07:00
    gw.clock.set(datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc))
    await gw.drain()
    assert "1 nowa ocena" in gw.botapi.texts_to(4001)[-1]


async def test_daily_digest_with_a_moved_clock(gw: Gateway) -> None:
    parent = await family(gw)
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"digest_mode": "daily", "digest_hour": 18})
    assert resp.status == 200
    await push(gw, [grade(1), grade(2)], "d1")
    await push(gw, [grade(3, value="1")], "d2")
    await gw.drain()
    assert len(gw.botapi.texts_to(4001)) == 1
    from gateway.jobs import run_job

    assert (await run_job(gw.services, "grade-digest", due="early"))["digests"] == 0
    gw.clock.set(datetime(2026, 11, 25, 17, 0, tzinfo=timezone.utc))  # 18:00 in Warsaw
    assert (await run_job(gw.services, "grade-digest", due="2026-11-25T18"))["digests"] == 1
    assert (await run_job(gw.services, "grade-digest", due="2026-11-25T18")) == {
        "skipped": "already run for this due time"}
    await gw.drain()
    digest = gw.botapi.texts_to(4001)[-1]
    assert "Podsumowanie ocen — 25 listopada 2026" in digest and "3 nowe oceny" in digest
    assert (await run_job(gw.services, "grade-digest", due="again"))["digests"] == 0


async def test_settings_command_changes_preferences(gw: Gateway) -> None:
    parent = await family(gw)
    [reply] = await gw.tg(4001, "/ustawienia tryb dzienny godzina 19 cisza 21:00-06:30 kanal email")
    assert "Zapisano" in reply and "w podsumowaniu dnia o 19:00" in reply
    person = await Person.get(id=parent)
    assert (person.digest_mode, person.digest_hour, person.quiet_start, person.quiet_end,
            person.channel_order) == ("daily", 19, "21:00", "06:30", ["email", "telegram"])
    [bad] = await gw.tg(4001, "/ustawienia cisza późno")
    assert "Nie rozumiem" in bad


async def test_email_guardian_gets_mail(gw: Gateway) -> None:
    parent = await gw.person("Mama Mailowa", ["parent"], email="mama@example.pl")
    await gw.client.post("/api/v1/students", headers=gw.admin,
                         json={"id": "S5", "name": "Zuzia", "class": "2c", "guardians": [parent]})
    await push(gw, [grade(1, "S5")])
    await gw.drain()
    [mail] = gw.sent_mail()
    assert mail["To"] == "mama@example.pl" and "Zuzia (2c): 1 nowa ocena" == mail["Subject"]


async def test_csv_imports_with_bad_rows_are_idempotent(gw: Gateway, tmp_path: Path) -> None:
    await gw.person("Opiekun", ["parent"], email="opiekun@example.pl")
    students = tmp_path / "students.csv"
    students.write_text("id;name;class;guardians\nS1;Jaś;3a;opiekun@example.pl\n"
                        ";Bez id;3a;\nS2;Małgosia;3a;nikt@example.pl\n", encoding="utf-8")
    report = await run_import(gw.services, "students", str(students), progress=False)
    assert report.applied == 1 and report.errors == [
        "line 3: 'id' and 'name' are required", "line 4: unknown guardian 'nikt@example.pl'"]
    grades = tmp_path / "grades.csv"
    grades.write_text("id,student,subject,value,weight,category,recorded_at\n"
                      "G1,S1,Polski,5,2,Kartkówka,2026-11-20T09:00:00+01:00\n"
                      "G2,S1,Polski,,1,,2026-11-20T09:00:00+01:00\n"
                      "G3,SX,Polski,4,1,,2026-11-20T09:00:00+01:00\n", encoding="utf-8")
    report = await run_import(gw.services, "grades", str(grades), progress=False)
    assert report.applied == 1
    assert report.errors == ["line 3: 'line 3.value' is required", "unknown student id 'SX'"]
    again = await run_import(gw.services, "grades", str(grades), progress=False)
    assert again.applied == 0 and again.unchanged == 1
    again = await run_import(gw.services, "students", str(students), progress=False)
    assert again.applied == 0 and again.unchanged == 1
    assert await Outbox.filter(cause="grades:S1").count() == 1


async def test_end_of_term_batch_exact_message_count(gw: Gateway) -> None:
    """10,000 grades for 600 students with 1,000 guardians: one notice per guardian and
    student, and none to anyone else."""
    now = gw.clock.now()
    await Person.bulk_create([Person(name=f"Rodzic {n}", roles=["parent"], created_at=now)
                              for n in range(1000)])
    people = await Person.all().order_by("id")
    await Identity.bulk_create([Identity(person_id=p.id, channel="telegram", address=str(50000 + i),
                                         created_at=now) for i, p in enumerate(people)])
    await Student.bulk_create([Student(id=f"T{n}", name=f"Uczeń {n}", class_name="8a")
                               for n in range(600)])
    through = [(f"T{n}", people[n].id) for n in range(600)]
    through += [(f"T{n}", people[600 + n].id) for n in range(400)]
    for sid, pid in through:
        student = await Student.get(id=sid)
        await student.guardians.add(await Person.get(id=pid))
    batch = [grade(n, f"T{n % 600}", value=str(1 + n % 6)) for n in range(10_000)]
    resp = await push(gw, batch, "end-of-term")
    body = await resp.json()
    assert body["created"] == 10_000 and body["notifications"] == 1000
    assert await Outbox.filter(cause__startswith="grades:").count() == 1000
    pairs = set(await Outbox.filter(cause__startswith="grades:").values_list("person_id", "cause"))
    assert pairs == {(pid, f"grades:{sid}") for sid, pid in through}
    resp = await push(gw, batch, "end-of-term-retry")  # re-sent under a new id: nothing new
    assert (await resp.json())["unchanged"] == 10_000
    assert await Outbox.filter(cause__startswith="grades:").count() == 1000


async def test_the_api_and_the_bot_accept_the_same_times(gw: Gateway) -> None:
    """Issue #12: the bot accepted `7:00`, the API refused it."""
    parent = await family(gw)
    resp = await gw.client.patch(f"/api/v1/people/{parent}", headers=gw.admin,
                                 json={"quiet_start": "21:30", "quiet_end": "7:00"})
    assert (await resp.json())["quiet_end"] == "07:00"
    reply = (await gw.tg(4001, "/ustawienia cisza 22:00-7:00"))[-1]
    assert "22:00–07:00" in reply
