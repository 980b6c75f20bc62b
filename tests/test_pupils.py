"""Issue #20: pupils themselves. A pupil's own account (role `student`, linked to one
Student through POST /api/v1/people `student`) sees their own grades, attendance, remarks,
homework and lesson topics — never a classmate's, by command or by a crafted button; guardians see what
they saw; a pupil account without a Student sees nothing; a pupil is sent no notices."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.imports import run_import
from store.models import Person
from tests.conftest import Gateway
from tests.doubles.botapi import callback_update
from tests.test_grades import grade, push
from tests.test_school import entry, hook
from tests.test_topics import post as post_topics

GUARDIAN, PUPIL, CLASSMATE, NO_STUDENT, CITIZEN = 9101, 9102, 9103, 9104, 9105
NOT_YOURS, NOBODY, NOT_ALLOWED = "Nie możemy pokazać", "nie jest przypisany żaden uczeń", "nie jest dostępne"


@pytest.fixture
async def school(gw: Gateway) -> dict[str, int]:
    """Pola (P1) and her classmate Kuba (P2) in 7a, each with a grade, an absence and a
    remark of their own and the class's homework; Pola's guardian, Pola and Kuba on their
    own accounts, a pupil account the school has not tied to a Student yet, a resident."""
    guardian = await gw.linked(GUARDIAN, "Rodzic Poli", ["parent"])
    for student, name in (("P1", "Pola Uczennica"), ("P2", "Kuba Kolega")):
        resp = await gw.client.post("/api/v1/students", headers=gw.admin, json={
            "id": student, "name": name, "class": "7a",
            "guardians": [guardian] if student == "P1" else []})
        assert resp.status == 201, await resp.text()
    ids = {"guardian": guardian,
           "pupil": await gw.linked(PUPIL, "Pola Uczennica", ["student"], student="P1"),
           "classmate": await gw.linked(CLASSMATE, "Kuba Kolega", ["student"], student="P2"),
           "no_student": await gw.linked(NO_STUDENT, "Uczeń bez ucznia", ["student"]),
           "citizen": await gw.linked(CITIZEN, "Mieszkaniec", ["citizen"])}
    gw.services.attendance_gather = gw.services.attendance_gather * 0
    assert (await push(gw, [grade(1, "P1", "5", subject="Fizyka"),
                            grade(2, "P2", "1", subject="Chemia")])).status == 200
    resp = await hook(gw, "attendance", [entry(31, "absent", "P1", period=3),
                                         entry(32, "late", "P2", period=7)], "att-p")
    assert resp.status == 200, await resp.text()
    resp = await hook(gw, "remarks", [
        {"id": "R31", "student": "P1", "kind": "positive", "text": "Pomoc w bibliotece",
         "teacher": "p. Kowalska", "recorded_at": "2026-11-25T10:00:00+01:00"},
        {"id": "R32", "student": "P2", "kind": "negative", "text": "Brak stroju",
         "teacher": "p. Nowak", "recorded_at": "2026-11-25T11:00:00+01:00"}], "rm-p")
    assert resp.status == 200, await resp.text()
    resp = await hook(gw, "homework", [{"id": "H31", "class": "7a", "subject": "polski",
                                        "kind": "quiz", "title": "Lektura", "due": "2026-11-27"}],
                      "hw-p")
    assert resp.status == 200, await resp.text()
    resp = await post_topics(gw, {"topics": [
        {"id": "T31", "class": "7a", "subject": "biologia", "date": "2026-11-24", "period": 2,
         "topic": "Budowa komórki", "teacher": "p. Zielińska"}]}, "tp-p")
    assert resp.status == 200, await resp.text()
    await gw.drain()
    return ids


#: (command, its button's prefix, what Pola's answer holds, what Kuba's answer holds)
SCHOOL = [
    ("/oceny", "grades", "Fizyka", "Chemia"),
    ("/obecnosci", "attendance", "lekcja 3", "lekcja 7"),
    ("/uwagi", "remarks", "Pomoc w bibliotece", "Brak stroju"),
    ("/zadania", "homework", "Lektura", "Kuba"),
    ("/tematy", "topics", "Budowa komórki", "Kuba"),
]


@pytest.mark.parametrize(("command", "kind", "own", "theirs"), SCHOOL)
async def test_a_pupil_sees_their_own_never_a_classmates(
        gw: Gateway, school: dict[str, int], command: str, kind: str, own: str, theirs: str
) -> None:
    [mine] = await gw.tg(PUPIL, command)
    assert "Pola Uczennica" in mine and own in mine and theirs not in mine, mine
    # the same command from the classmate's own account: theirs, not Pola's
    [other] = await gw.tg(CLASSMATE, command)
    assert "Kuba Kolega" in other and "Pola" not in other, other
    # a button crafted with the classmate's id is refused like a stranger's child
    await gw.update(callback_update(PUPIL, f"{kind}:P2"))
    refused = gw.botapi.texts_to(PUPIL)[-1]
    assert NOT_YOURS in refused and "Kuba" not in refused
    await gw.update(callback_update(PUPIL, f"{kind}:P1"))  # one's own button answers
    assert own in gw.botapi.texts_to(PUPIL)[-1]
    # the guardian unchanged: their child's data, and a button of another child refused
    [guardian] = await gw.tg(GUARDIAN, command)
    assert "Pola Uczennica" in guardian and own in guardian and theirs not in guardian
    await gw.update(callback_update(GUARDIAN, f"{kind}:P2"))
    assert NOT_YOURS in gw.botapi.texts_to(GUARDIAN)[-1]
    # a pupil account without a Student sees nobody, by command or by button
    [nobody] = await gw.tg(NO_STUDENT, command)
    assert NOBODY in nobody
    await gw.update(callback_update(NO_STUDENT, f"{kind}:P1"))
    assert NOT_YOURS in gw.botapi.texts_to(NO_STUDENT)[-1]
    # a resident is not let in at all
    [citizen] = await gw.tg(CITIZEN, command)
    assert NOT_ALLOWED in citizen


async def test_a_student_id_without_the_role_shows_nothing(gw: Gateway, school: dict[str, int]
                                                           ) -> None:
    """The role decides: the school taking `student` away closes the pupil's view even
    though the Student stays written on the person."""
    await Person.filter(id=school["pupil"]).update(roles=["parent"])
    [reply] = await gw.tg(PUPIL, "/oceny")
    assert NOBODY in reply
    await gw.update(callback_update(PUPIL, "grades:P1"))
    assert NOT_YOURS in gw.botapi.texts_to(PUPIL)[-1]


async def test_a_pupil_is_sent_no_notices(gw: Gateway, school: dict[str, int]) -> None:
    """Notices are the guardians': the register's news reached Pola's guardian, and Pola's
    own chat holds only the answer to linking it."""
    told = gw.botapi.texts_to(GUARDIAN)
    assert any("Fizyka" in t for t in told) and any("Pomoc w bibliotece" in t for t in told)
    [linked] = gw.botapi.texts_to(PUPIL)
    assert "połączony" in linked


async def test_the_api_ties_a_pupil_to_a_known_student_only(gw: Gateway,
                                                            school: dict[str, int]) -> None:
    async def create(**body: object) -> tuple[int, dict]:
        resp = await gw.client.post("/api/v1/people", headers=gw.admin,
                                    json={"name": "Nowy uczeń", **body})
        return resp.status, await resp.json()

    status, body = await create(roles=["parent"], student="P1")
    assert (status, body["error"]["field"]) == (400, "student")
    status, body = await create(roles=["student"], student="NIE-MA")
    assert (status, body["error"]["field"]) == (400, "student")
    assert not await Person.filter(name="Nowy uczeń").exists()  # nothing half-made
    status, body = await create(roles=["student"], student="P2")
    assert status == 201
    assert (await Person.get(id=body["id"])).student_id == "P2"
    assert (await Person.get(id=school["no_student"])).student_id is None


async def test_help_speaks_to_a_pupil_of_their_own_records(gw: Gateway, school: dict[str, int]
                                                           ) -> None:
    [pupil] = await gw.tg(PUPIL, "/pomoc")
    assert "/oceny — Twoje ostatnie oceny" in pupil and "dzieci" not in pupil
    assert "/tematy — tematy lekcji z ostatnich dni" in pupil
    assert pupil.startswith("ℹ️")  # no blank line left by the template's setting
    [guardian] = await gw.tg(GUARDIAN, "/pomoc")
    assert "/oceny — ostatnie oceny dzieci" in guardian
    await gw.linked(9106, "Pupil", ["student"], student="P2", language="en")
    [english] = await gw.tg(9106, "/help")
    assert "/grades — your recent grades" in english and "children" not in english


async def test_pupils_by_csv_with_row_numbered_errors(gw: Gateway, school: dict[str, int],
                                                      tmp_path: Path) -> None:
    """A school links its pupils in bulk: the people CSV's `student` column, checked like
    the API's, and a re-import that changes nothing."""
    people = tmp_path / "people.csv"
    people.write_text("name;roles;email;student\n"
                      "Pola z pliku;student;pola@example.pl;P1\n"
                      "Ktoś;student;ktos@example.pl;NIE-MA\n"
                      "Rodzic;parent;rodzic@example.pl;P2\n", encoding="utf-8")
    report = await run_import(gw.services, "people", str(people), progress=False)
    assert report.applied == 1 and report.errors == [
        "line 3: no student with id 'NIE-MA'",
        "line 4: 'student' is only for a person with role student"]
    assert (await Person.get(name="Pola z pliku", student_id="P1")).roles == ["student"]
    assert not await Person.filter(name="Ktoś").exists()
    again = await run_import(gw.services, "people", str(people), progress=False)
    assert again.applied == 0 and again.unchanged == 1


async def test_a_pupils_export_names_the_student_their_account_is(
        gw: Gateway, school: dict[str, int]) -> None:
    """Review of #20: a pupil's RODO export listed only the pupils they are a guardian of,
    never the Student their own account is tied to."""
    from handlers import rodo

    exported = await rodo.export(school["pupil"], channels=gw.services.channels)
    assert exported is not None
    assert exported["person"]["student_id"] == "P1"
    assert exported["own_student"] == {"id": "P1", "name": "Pola Uczennica", "class_name": "7a"}
    guardian = await rodo.export(school["guardian"], channels=gw.services.channels)
    assert guardian is not None and guardian["own_student"] is None
