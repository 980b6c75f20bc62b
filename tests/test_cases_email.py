"""Cases by email: sprawy@ over real SMTP into aiosmtpd, replies as .eml files."""

from __future__ import annotations

import re

from store.models import Attachment, Case, CaseEvent, RawInbound
from tests.conftest import Gateway, make_mail


async def test_new_case_by_mail_gets_number_code_and_threaded_reply(gw: Gateway) -> None:
    original = make_mail("Dziura w chodniku na ul. Kościuszki", "Proszę o naprawę, jest niebezpiecznie.")
    [reply] = await gw.mail(original)
    case = await Case.get()
    assert re.fullmatch(r"UM-2026-000001", case.number)
    assert f"[{case.number}]" in reply["Subject"]
    assert reply["In-Reply-To"] == original["Message-ID"]
    assert original["Message-ID"] in reply["References"]
    assert reply["Auto-Submitted"] == "auto-generated"
    assert reply["To"] == "jan@example.pl"
    assert reply["From"] == "sprawy@milanowek.example"
    text = reply.get_body(("plain",)).get_content()
    assert "Numer sprawy: UM-2026-000001" in text
    code = re.search(r"Kod dostępu: ([A-Z0-9-]+)", text).group(1)
    assert re.fullmatch(r"([A-Z2-9]{4}-){3}[A-Z2-9]{4}", code)  # 80 bits, typed in groups
    html = reply.get_body(("html",)).get_content()
    assert "Kościuszki" in html
    # the access code opens the case over the API
    resp = await gw.client.get(f"/api/v1/cases/{case.number}?code={code}")
    assert resp.status == 200
    assert (await resp.json())["status"] == "received"


async def test_numbers_are_sequential(gw: Gateway) -> None:
    for n in range(3):
        await gw.mail(make_mail(f"Sprawa {n}", "treść"))
    numbers = sorted(await Case.all().values_list("number", flat=True))
    assert numbers == ["UM-2026-000001", "UM-2026-000002", "UM-2026-000003"]


async def test_reply_with_tag_is_added_to_the_case(gw: Gateway) -> None:
    [first] = await gw.mail(make_mail("Wniosek o wycinkę drzewa", "Proszę o zgodę."))
    number = (await Case.get()).number
    follow = make_mail(f"Re: [{number}] Wniosek o wycinkę drzewa", "Dosyłam zdjęcie.",
                       In_Reply_To=first["Message-ID"])
    [ack] = await gw.mail(follow)
    assert await Case.all().count() == 1
    assert await CaseEvent.filter(case_id=number, kind="message", text="Dosyłam zdjęcie.").exists()
    assert f"[{number}]" in ack["Subject"]


async def test_plain_reply_threaded_to_our_mail_finds_the_case(gw: Gateway) -> None:
    [first] = await gw.mail(make_mail("Hałas w nocy", "Sąsiedzi hałasują."))
    follow = make_mail("Odp: bez tagu", "Nadal hałasują.", In_Reply_To=first["Message-ID"])
    await gw.mail(follow)
    assert await Case.all().count() == 1
    assert await CaseEvent.filter(kind="message", text="Nadal hałasują.").exists()


async def test_someone_else_cannot_add_to_or_read_a_case(gw: Gateway) -> None:
    await gw.mail(make_mail("Moja sprawa", "prywatne"))
    number = (await Case.get()).number
    [refusal] = await gw.mail(make_mail(f"[{number}] wtrącam się", "hej",
                                        sender="obcy@example.com"), sender="obcy@example.com")
    assert "nie możemy podać" in refusal.get_body(("plain",)).get_content()
    [status] = await gw.mail(make_mail(f"status {number}", "", sender="obcy@example.com"),
                             sender="obcy@example.com")
    unknown = await gw.mail(make_mail("status UM-2026-999999", "", sender="obcy@example.com"),
                            sender="obcy@example.com")
    # the refusal for an existing case reads like the one for a missing case
    assert status.get_body(("plain",)).get_content().replace(number, "X") == \
        unknown[0].get_body(("plain",)).get_content().replace("UM-2026-999999", "X")
    assert await CaseEvent.filter(kind="message").count() == 0


async def test_status_by_mail(gw: Gateway) -> None:
    await gw.mail(make_mail("Oświetlenie", "Nie świeci latarnia."))
    number = (await Case.get()).number
    [reply] = await gw.mail(make_mail(f"status {number}", ""))
    assert "przyjęta" in reply["Subject"]
    assert "Status: przyjęta" in reply.get_body(("plain",)).get_content()


async def test_raw_mail_is_stored_before_250_and_duplicates_open_one_case(gw: Gateway) -> None:
    msg = make_mail("Podwójna", "Ten sam list dwa razy.")
    code, _ = await gw.smtp(msg)
    assert code == 250
    assert await RawInbound.filter(channel="email").count() == 1  # stored before the answer
    code, _ = await gw.smtp(msg)  # a retrying relay delivers it again
    assert code == 250
    await gw.drain()
    assert await Case.all().count() == 1


async def test_automatic_mail_is_never_answered(gw: Gateway) -> None:
    robots = [
        make_mail("Out of office", "Nie ma mnie.", Auto_Submitted="auto-replied"),
        make_mail("Newsletter", "Promocja", Precedence="bulk"),
        make_mail("Autoodpowiedź", "x", X_Auto_Response_Suppress="All"),
        make_mail("Loop", "x", X_Loop="gateway@milanowek.example"),
    ]
    for msg in robots:
        assert await gw.mail(msg) == []
    bounce = make_mail("Undelivered Mail Returned to Sender", "bounce")
    code, _ = await gw.smtp(bounce, sender="")
    await gw.drain()
    assert code == 250
    assert gw.sent_mail() == []
    assert await Case.all().count() == 0
    assert await RawInbound.filter(status="ignored").count() == 5


async def test_attachments_are_kept_with_the_case(gw: Gateway) -> None:
    msg = make_mail("Zdjęcie szkody", "W załączniku zdjęcie.")
    msg.add_attachment(b"\x89PNG fake", maintype="image", subtype="png", filename="szkoda.png")
    await gw.mail(msg)
    stored = await Attachment.get()
    assert stored.filename == "szkoda.png"
    assert bytes(stored.data) == b"\x89PNG fake"


async def test_one_failing_mail_does_not_sink_its_batch(gw: Gateway, monkeypatch) -> None:
    """Three mails wait in one batch; the middle one's handler crashes. The batch rolls back,
    each mail is handled again on its own: two cases, and for the third an answer that it
    was passed to the office, with a reference the row (set aside for a clerk) and the log
    keep too (issue #18)."""
    from handlers import cases

    real = cases.create_cases

    async def flaky(ctx, drafts, **kw):  # type: ignore[no-untyped-def]
        if drafts[0].subject == "Wybuch":
            raise RuntimeError("boom")
        return await real(ctx, drafts, **kw)

    monkeypatch.setattr(cases, "create_cases", flaky)
    for subject in ("Pierwsza", "Wybuch", "Trzecia"):
        code, _ = await gw.smtp(make_mail(subject, "treść"))
        assert code == 250
    assert await RawInbound.filter(status="pending").count() == 3
    before = len(gw.sent_mail())
    await gw.drain()
    sent = gw.sent_mail()[before:]
    assert sorted(await Case.all().values_list("subject", flat=True)) == ["Pierwsza", "Trzecia"]
    # numbers given back by the rolled-back batch are reused: no gaps, no duplicates
    assert sorted(await Case.all().values_list("number", flat=True)) == [
        "UM-2026-000001", "UM-2026-000002"]
    failed = await RawInbound.get(status="unread")
    assert failed.note.startswith("ref ")
    apology = [m for m in sent if "Przekazaliśmy" in m["Subject"]]
    assert len(apology) == 1 and failed.note[4:] in apology[0].get_body(("plain",)).get_content()
    assert len(sent) == 3


async def test_a_subject_that_merely_starts_with_status_opens_a_case(gw: Gateway) -> None:
    """Issue #12: "Status prawny działki…" was refused as a status query."""
    [reply] = await gw.mail(make_mail("Status prawny działki przy ul. Kościuszki",
                                      "Proszę o informację o statusie działki nr 12/3."))
    case = await Case.get()
    assert case.subject.startswith("Status prawny") and case.number in reply["Subject"]
    # `status` alone in a reply to our mail asks for that case's status
    [status] = await gw.mail(make_mail("Re: sprawa", "status\n\n> cytat",
                                       In_Reply_To=reply["Message-ID"]))
    assert await Case.all().count() == 1
    assert "przyjęta" in status["Subject"] or "przyjęta" in status.get_body(("plain",)).get_content()
