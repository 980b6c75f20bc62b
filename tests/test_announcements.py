"""Intranet announcements: audience, confirmation, scheduling, retraction, acknowledgement."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from gateway.app import create_app
from gateway.jobs import run_job
from gateway.keys import DISPATCHER
from handlers import announcements
from store.clock import Clock
from store.models import Announcement, AnnouncementDelivery, AuditEntry, Outbox, Person
from store.outbox import PRIORITY_BULK, Delivery, enqueue
from tests.conftest import WEBHOOK_SECRET, Gateway, make_mail
from tests.doubles.botapi import callback_update, message_update
from tests.mailauth import sign, verifying


async def staff_room(gw: Gateway) -> dict[str, int]:
    """Three school-1 staff (one also a librarian), one office clerk, one librarian."""
    people = {
        "ala": await gw.linked(7001, "Ala", ["staff"], units=["szkola-1"]),
        "bea": await gw.linked(7002, "Bea", ["staff", "librarian"], units=["szkola-1"]),
        "cez": await gw.person("Cezary", ["staff"], units=["szkola-1", "urzad"],
                               email="cezary@milanowek.example"),
        "dar": await gw.linked(7004, "Dariusz", ["staff"], units=["urzad"]),
        "ewa": await gw.linked(7005, "Ewa", ["librarian"], units=["biblioteka"]),
    }
    return people


async def post(gw: Gateway, **body) -> dict:
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin,
                                json={"title": "Zebranie", "body": "Jutro o **10:00**.", **body})
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def test_audience_units_counted_once_and_roles_narrow(gw: Gateway) -> None:
    p = await staff_room(gw)
    found = await announcements.recipients({"units": ["szkola-1"], "roles": ["librarian"]})
    assert [x.id for x in found] == [p["bea"]]  # roles narrow a unit, never widen it
    found = await announcements.recipients({"roles": ["librarian"]})
    assert sorted(x.id for x in found) == sorted([p["bea"], p["ewa"]])
    created = await post(gw, audience={"units": ["szkola-1", "urzad"]})
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    # Cezary is in both units and counted once
    assert await AnnouncementDelivery.filter(announcement_id=created["id"]).count() == 4
    assert len(gw.botapi.texts_to(7002)) == 2  # link confirmation + one announcement
    assert "<b>Zebranie</b>" in gw.botapi.texts_to(7002)[-1]
    assert "Jutro o <b>10:00</b>." in gw.botapi.texts_to(7002)[-1]
    [mail] = gw.sent_mail()
    assert mail["To"] == "cezary@milanowek.example" and mail["Subject"] == "Zebranie"
    assert "/ack/" in mail.get_body(("plain",)).get_content()


async def test_acknowledgement_by_button_and_by_link(gw: Gateway) -> None:
    p = await staff_room(gw)
    created = await post(gw, audience={"units": ["szkola-1"]})
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    button = gw.botapi.messages_to(7001)[-1].params["reply_markup"]["inline_keyboard"][0][0]
    assert button == {"text": "Przeczytane / Read", "callback_data": f"ack:{created['id']}"}
    await gw.update(callback_update(7001, button["callback_data"]))
    [mail] = gw.sent_mail()
    link = re.search(r"http://\S+/ack/(\S+)", mail.get_body(("plain",)).get_content())
    # opening the link (as a mail scanner does) only shows the button ...
    resp = await gw.client.get(f"/ack/{link.group(1)}")
    page = await resp.text()
    assert resp.status == 200 and '<form method="post"' in page and 'lang="pl"' in page
    assert await AnnouncementDelivery.filter(acked_at__isnull=False).count() == 1
    # ... pressing it acknowledges
    resp = await gw.client.post(f"/ack/{link.group(1)}")
    assert resp.status == 200 and "Dziękujemy" in await resp.text()
    assert (await gw.client.get("/ack/forged-token")).status == 404
    assert (await gw.client.post("/ack/forged-token")).status == 404
    resp = await gw.client.get(f"/api/v1/announcements/{created['id']}", headers=gw.admin)
    stats = await resp.json()
    assert (stats["recipients"], stats["sent"], stats["acknowledged"]) == (3, 3, 2)
    assert [u["id"] for u in stats["unacknowledged"]] == [p["bea"]]
    # a link older than EMIL_ACK_TTL_DAYS no longer works
    gw.services.ack_ttl = timedelta(seconds=-1)
    assert (await gw.client.post(f"/ack/{link.group(1)}")).status == 404


async def test_schedule_then_cancel_with_a_moved_clock(gw: Gateway) -> None:
    await staff_room(gw)
    later = (gw.clock.now() + timedelta(hours=2)).isoformat()
    first = await post(gw, audience={"units": ["urzad"]}, publish_at=later)
    second = await post(gw, title="Odwołane", audience={"units": ["urzad"]}, publish_at=later)
    assert (await run_job(gw.services, "scheduled-announcements"))["published"] == 0
    resp = await gw.client.post(f"/api/v1/announcements/{second['id']}/cancel", headers=gw.admin)
    assert resp.status == 200
    gw.clock.advance(hours=2)
    assert (await run_job(gw.services, "scheduled-announcements"))["published"] == 1
    await gw.drain()
    assert "Zebranie" in gw.botapi.texts_to(7004)[-1]
    assert not any("Odwołane" in t for t in gw.botapi.texts_to(7004))
    resp = await gw.client.post(f"/api/v1/announcements/{first['id']}/cancel", headers=gw.admin)
    assert resp.status == 409


async def test_retraction_tells_those_who_got_it(gw: Gateway) -> None:
    await staff_room(gw)
    created = await post(gw, audience={"units": ["urzad"]})
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    resp = await gw.client.post(f"/api/v1/announcements/{created['id']}/retract",
                                headers=gw.admin)
    assert (await resp.json())["notices"] == 2
    await gw.drain()
    assert "wycofane" in gw.botapi.texts_to(7004)[-1]
    assert gw.sent_mail()[-1]["Subject"] == "Wycofane: Zebranie"


async def test_mail_announcement_needs_confirmation_and_forgery_fails(gw: Gateway) -> None:
    await staff_room(gw)
    sender = "cezary@milanowek.example"
    draft = make_mail("Zamknięcie urzędu w piątek", "Urząd nieczynny.", sender=sender,
                      to="ogloszenia@milanowek.example")
    # unsigned, the town's From proves nothing: no preview of its text, only a short ask
    [ask] = await gw.mail(draft, to="ogloszenia", sender=sender)
    assert ask["Subject"] == "Prosimy o potwierdzenie adresu"
    assert "Urząd nieczynny" not in ask.get_body(("plain",)).get_content()
    assert await Announcement.all().count() == 0
    # signed by the town's domain (DKIM, DMARC pass): the draft and its preview
    gw.services.mail_auth = verifying("milanowek.example")
    draft.replace_header("Message-ID", "<draft-2@milanowek.example>")
    [preview] = await gw.mail(sign(draft.as_bytes(), "milanowek.example"),
                              to="ogloszenia", sender=sender)
    assert preview["To"] == sender and "[OGL-" in preview["Subject"]
    assert "dla 4 osób" in preview.get_body(("plain",)).get_content()
    assert await Outbox.filter(cause__startswith="ann:").count() == 0  # nothing sent yet
    # someone else replying with the token (e.g. after a forwarded preview) cannot confirm
    [refused] = await gw.mail(make_mail(f"Re: {preview['Subject']}", "POTWIERDZAM",
                                        sender="obcy@example.com"),
                              to="ogloszenia", sender="obcy@example.com")
    assert "Nie znaleźliśmy" in refused.get_body(("plain",)).get_content()
    # the confirmation is a reply to the preview: threaded to our Message-ID, it is proven
    gw.services.mail_auth = None
    mails = await gw.mail(make_mail(f"Re: {preview['Subject']}", "Potwierdzam\n\n> cytat",
                                    sender=sender, In_Reply_To=preview["Message-ID"]),
                          to="ogloszenia", sender=sender)
    own_copy, done = sorted(mails, key=lambda m: "wysłane" in m["Subject"])
    assert "wysyłane do 4 osób" in done.get_body(("plain",)).get_content()
    assert own_copy["Subject"] == "Zamknięcie urzędu w piątek"  # the author is in the audience
    await gw.drain()
    assert "Zamknięcie urzędu w piątek" in gw.botapi.texts_to(7004)[-1]
    assert await Outbox.filter(cause__startswith="ann:").count() == 4
    # the audit trail names the staff member and the channel, for the draft and the "yes"
    trail = await AuditEntry.filter(object__startswith="announcement:").order_by("id"
                                                                               ).values_list(
        "action", "source", "person_id")
    author = (await Announcement.get()).author_id
    assert trail == [("announcement.create", "mail", author),
                     ("announcement.confirm", "mail", author)]


async def test_non_staff_mail_is_refused(gw: Gateway) -> None:
    await staff_room(gw)
    [reply] = await gw.mail(make_mail("Ogłoszenie", "spam", sender="mieszkaniec@example.pl"),
                            to="ogloszenia", sender="mieszkaniec@example.pl")
    assert "tylko pracownicy" in reply.get_body(("plain",)).get_content()
    assert await Announcement.all().count() == 0


async def test_bot_dialogue_and_status(gw: Gateway) -> None:
    await staff_room(gw)
    [ask] = await gw.tg(7001, "/ogloszenie")
    assert "szkola-1" in ask
    [refused] = await gw.tg(7001, "urzad")
    assert "tylko w swoich jednostkach" in refused
    [title] = await gw.tg(7001, "szkola-1")
    assert "Odbiorców: 3" in title
    await gw.tg(7001, "Rada pedagogiczna")
    [preview] = await gw.tg(7001, "W czwartek o _15:00_ w sali 12.")
    assert "<i>15:00</i>" in preview and "3 odbiorców" in preview
    replies = await gw.tg(7001, "tak")
    assert "wysyłane do 3 osób" in replies[0]  # the reply first, then her own copy
    assert "Rada pedagogiczna" in replies[1]
    await gw.drain()
    assert "Rada pedagogiczna" in gw.botapi.texts_to(7002)[-1]
    [status] = await gw.tg(7001, "/ogloszenie status")
    assert "Rada pedagogiczna — opublikowane: odbiorców 3" in status and "wysłane 3" in status
    [denied] = await gw.tg(7005, "/ogloszenie")
    assert "nie jest dostępne" in denied
    [(action, source)] = await AuditEntry.filter(object__startswith="announcement:").values_list(
        "action", "source")
    assert (action, source) == ("announcement.create", "bot")


async def test_quiet_hours_wait_but_urgent_does_not(gw: Gateway) -> None:
    await staff_room(gw)
    gw.clock.set(datetime(2026, 11, 25, 22, 0, tzinfo=timezone.utc))  # 23:00 in Warsaw
    await post(gw, title="Zwykłe", audience={"units": ["urzad"]})
    await post(gw, title="Pilne: awaria", audience={"units": ["urzad"]}, priority="urgent")
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    texts = gw.botapi.texts_to(7004)
    assert any("🚨" in t and "Pilne: awaria" in t for t in texts)
    assert not any("Zwykłe" in t for t in texts)


async def test_fan_out_that_died_half_way_completes_without_duplicates(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    now = gw.clock.now()
    await Person.bulk_create([Person(name=f"P{n}", roles=["staff"], units=["szkola-2"],
                                     created_at=now) for n in range(4500)])
    people = await Person.filter(units__contains=["szkola-2"]) if False else await Person.all()
    from store.models import Identity

    await Identity.bulk_create([Identity(person_id=p.id, channel="telegram",
                                         address=str(100000 + p.id), created_at=now)
                                for p in people])
    created = await post(gw, audience={"units": ["szkola-2"]})
    from handlers import fanout

    real_enqueue = fanout.queue
    calls = {"n": 0}

    async def dies_on_second_chunk(deliveries, when):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("power cut")
        return await real_enqueue(deliveries, when)

    monkeypatch.setattr(fanout, "queue", dies_on_second_chunk)
    with pytest.raises(ConnectionError):
        await run_job(gw.services, "scheduled-announcements")
    assert await Outbox.filter(cause=f"ann:{created['id']}").count() == announcements.CHUNK
    monkeypatch.setattr(fanout, "queue", real_enqueue)
    await run_job(gw.services, "scheduled-announcements")
    await run_job(gw.services, "scheduled-announcements")
    assert await Outbox.filter(cause=f"ann:{created['id']}").count() == 4500
    assert (await Announcement.get(id=created["id"])).status == "published"


async def test_a_reply_goes_ahead_of_a_draining_broadcast(botapi, settings, aiohttp_client
                                                          ) -> None:
    """While 400 bulk messages drain at 40/s, a resident's /pomoc is answered at once."""
    settings = settings.model_copy(update={"telegram_rate": 40})
    app = create_app(settings, clock=Clock(), run_workers=True)
    client = await aiohttp_client(app)
    await enqueue([Delivery(key=f"bulk:{n}", channel="telegram", recipient=str(20000 + n),
                            payload={"text": "ogłoszenie"}, priority=PRIORITY_BULK)
                   for n in range(400)], Clock().now())
    app[DISPATCHER].notify()
    await botapi.wait_for(40, timeout=10)
    asked = time.monotonic()
    resp = await client.post("/telegram/webhook", json=message_update(31337, "/pomoc"),
                             headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
    assert resp.status == 200
    while not botapi.texts_to(31337):
        await asyncio.sleep(0.02)
    latency = time.monotonic() - asked
    pending = await Outbox.filter(status="pending", cause="").count()
    print(f"reply latency while the broadcast drains: {latency:.2f} s, bulk still queued: {pending}")
    assert pending > 200  # the reply did not wait for the broadcast


async def test_one_attachment_by_email_and_as_a_telegram_document(gw: Gateway) -> None:
    import base64 as b64

    await staff_room(gw)
    pdf = b"%PDF-1.4 harmonogram"
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "Harmonogram", "body": "W załączniku.", "audience": {"units": ["urzad"]},
        "attachment": {"filename": "harmonogram.pdf", "content_type": "application/pdf",
                       "data": b64.b64encode(pdf).decode()}})
    assert resp.status == 202
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    document = gw.botapi.messages_to(7004)[-1]
    assert document.method == "sendDocument"
    assert document.params["document"] == {"filename": "harmonogram.pdf", "data": pdf}
    assert "Harmonogram" in document.params["caption"]
    assert document.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"].startswith("ack:")
    [mail] = gw.sent_mail()
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "harmonogram.pdf" and part.get_content() == pdf
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "x", "body": "y", "audience": {"units": ["urzad"]},
        "attachment": {"filename": "a.txt", "data": "not base64!"}})
    assert (await resp.json())["error"]["field"] == "attachment.data"


async def test_staff_cannot_reach_outside_their_unit_by_adding_roles(gw: Gateway) -> None:
    """Issue #11: `urzad, rola:librarian` from an office clerk used to reach every
    librarian in town; now it reaches the librarians of the office, here nobody."""
    await staff_room(gw)
    await gw.tg(7004, "/ogloszenie")
    await gw.tg(7004, "urzad, rola:librarian")
    await gw.tg(7004, "Tytuł")
    await gw.tg(7004, "Treść")
    await gw.tg(7004, "tak")
    await gw.drain()
    announcement = await Announcement.get(title="Tytuł")
    assert await AnnouncementDelivery.filter(announcement_id=announcement.id).count() == 0
    assert len(gw.botapi.texts_to(7005)) == 1  # Ewa (library): only her link confirmation
    assert not any("Treść" in t for t in gw.botapi.texts_to(7002))


async def test_retraction_tells_those_whose_copy_was_reported_delivered(gw: Gateway) -> None:
    """Review of #19: a copy confirmed `delivered` (an SMS delivery report) was left out of
    the retraction, which only looked for `sent` copies."""
    from store.models import Outbox
    from store.outbox import mark_delivered

    await staff_room(gw)
    created = await post(gw, audience={"units": ["urzad"]})
    await run_job(gw.services, "scheduled-announcements")
    await gw.drain()
    copies = await Outbox.filter(cause=f"ann:{created['id']}", status="sent")
    for row in copies:
        await mark_delivered(row.id, row.channel, gw.clock.now())
    resp = await gw.client.post(f"/api/v1/announcements/{created['id']}/retract",
                                headers=gw.admin)
    assert (await resp.json())["notices"] == len(copies) == 2
