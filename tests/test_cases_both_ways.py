"""Issue #12, "cases, both ways in the bot": a resident adds to their own case from
Telegram (a reply to our message, or `/sprawa UM-…` then text), photos and documents are
kept (fetched with getFile, size-limited), and the next notice takes the channel they
last used — mail → bot and bot → mail."""

from __future__ import annotations

import re

from store.models import Attachment, Case, CaseEvent
from tests.conftest import Gateway, make_mail
from tests.doubles.botapi import message_update


def photo_reply(chat: int, replied_text: str, caption: str, file_id: str, size: int) -> dict:
    data = message_update(chat, caption)
    message = data["message"]
    del message["text"]
    message["caption"] = caption
    message["photo"] = [{"file_id": f"{file_id}-small", "file_unique_id": "s", "width": 90,
                         "height": 90, "file_size": 5},
                        {"file_id": file_id, "file_unique_id": "b", "width": 1280,
                         "height": 960, "file_size": size}]
    message["reply_to_message"] = {"message_id": 1, "date": message["date"],
                                   "chat": message["chat"], "text": replied_text,
                                   "from": {"id": 777000, "is_bot": True,
                                            "first_name": "e-Milanówek"}}
    return data


async def test_a_reply_with_a_photo_adds_to_the_case_and_mail_follows(gw: Gateway) -> None:
    await gw.linked(3301, "Ewa", email="ewa@example.pl")
    [confirmation] = await gw.mail(make_mail("Zepsuta ławka", "W parku.",
                                             sender="ewa@example.pl"), sender="ewa@example.pl")
    case = await Case.get()
    # staff answer: the mail was her last channel, so it comes by mail
    await gw.client.post(f"/api/v1/cases/{case.number}/events", headers=gw.admin,
                         json={"status": "in_progress", "note": "Prosimy o zdjęcie."})
    await gw.drain()
    assert "Prosimy o zdjęcie" in gw.sent_mail()[-1].get_body(("plain",)).get_content()
    # she answers from Telegram, replying to the bot's /status message with a photo
    [status] = await gw.tg(3301, f"/status {case.number}")
    gw.botapi.files["PHOTO-1"] = b"\xff\xd8jpeg-bytes"
    before = len(gw.botapi.texts_to(3301))
    await gw.update(photo_reply(3301, status, "Zdjęcie ławki", "PHOTO-1", 12))
    [ack] = gw.botapi.texts_to(3301)[before:]
    assert case.number in ack and "Dołączyliśmy" in ack
    assert await CaseEvent.filter(case_id=case.number, kind="message", channel="telegram",
                                  text="Zdjęcie ławki").exists()
    [kept] = await Attachment.filter(case_id=case.number)
    assert kept.data == b"\xff\xd8jpeg-bytes" and kept.content_type == "image/jpeg"
    # the next notice takes the channel she last used: the bot
    mails = len(gw.sent_mail())
    await gw.client.post(f"/api/v1/cases/{case.number}/events", headers=gw.admin,
                         json={"status": "resolved", "note": "Naprawione."})
    await gw.drain()
    assert "Naprawione." in gw.botapi.texts_to(3301)[-1] and len(gw.sent_mail()) == mails
    assert confirmation  # and it all began by mail


async def test_sprawa_with_a_number_then_text_and_a_too_large_document(gw: Gateway) -> None:
    await gw.linked(3302, "Olek")
    await gw.tg(3302, "/sprawa")
    await gw.tg(3302, "Hałas nocą")
    created = (await gw.tg(3302, "Sąsiedzi co noc."))[-1]
    number = re.search(r"UM-\d{4}-\d{6}", created).group(0)
    [ask] = await gw.tg(3302, f"/sprawa {number}")
    assert "Napisz wiadomość" in ask
    data = message_update(3302, "Nagranie w załączniku")
    data["message"]["caption"] = data["message"].pop("text")
    data["message"]["document"] = {"file_id": "DOC-BIG", "file_unique_id": "d",
                                   "file_name": "nagranie.wav", "mime_type": "audio/wav",
                                   "file_size": gw.services.attachment_max_size + 1}
    await gw.update(data)
    reply = gw.botapi.texts_to(3302)[-1]
    assert "Niezapisane: nagranie.wav" in reply and "większy niż 10 MB" in reply
    event = await CaseEvent.get(case_id=number, kind="message")
    assert event.text.startswith("Nagranie w załączniku") and "nagranie.wav" in event.text
    assert await Attachment.filter(case_id=number).count() == 0


async def test_a_document_the_bot_could_not_fetch_is_not_called_too_large(gw: Gateway) -> None:
    """A Telegram download error is its own reason (it was told "larger than 10 MB")."""
    await gw.linked(3305, "Ola")
    await gw.tg(3305, "/sprawa")
    await gw.tg(3305, "Dziura")
    created = (await gw.tg(3305, "W jezdni."))[-1]
    number = re.search(r"UM-\d{4}-\d{6}", created).group(0)
    await gw.tg(3305, f"/sprawa {number}")
    data = message_update(3305, "Zdjęcie dziury")
    data["message"]["caption"] = data["message"].pop("text")
    data["message"]["document"] = {"file_id": "DOC-GONE", "file_unique_id": "g",
                                   "file_name": "dziura.jpg", "mime_type": "image/jpeg",
                                   "file_size": 200_000}  # the Bot API double does not have it
    await gw.update(data)
    reply = gw.botapi.texts_to(3305)[-1]
    assert "dziura.jpg" in reply and "nie udało się go pobrać" in reply
    assert "większy" not in reply


async def test_nobody_adds_to_someone_elses_case_from_the_bot(gw: Gateway) -> None:
    await gw.linked(3303, "Właściciel")
    await gw.tg(3303, "/sprawa")
    await gw.tg(3303, "Moja sprawa")
    created = (await gw.tg(3303, "Treść sprawy."))[-1]
    number = re.search(r"UM-\d{4}-\d{6}", created).group(0)
    await gw.linked(3304, "Obcy")
    [refusal] = await gw.tg(3304, f"/sprawa {number}")
    assert "Nie możemy podać" in refusal
    data = message_update(3304, "wtrącam się")
    data["message"]["reply_to_message"] = {"message_id": 1, "date": 1,
                                           "chat": data["message"]["chat"],
                                           "text": f"Sprawa {number}"}
    await gw.update(data)
    assert "Nie możemy podać" in gw.botapi.texts_to(3304)[-1]
    assert not await CaseEvent.filter(case_id=number, kind="message").exists()


async def test_mail_attachments_over_the_limit_are_listed_and_told(gw: Gateway) -> None:
    gw.services.attachment_max_size = 10
    mail = make_mail("Plan działki", "W załączniku plan.")
    mail.add_attachment(b"x" * 2_000_000, maintype="application", subtype="pdf",
                        filename="plan.pdf")
    [reply] = await gw.mail(mail)
    case = await Case.get()
    assert "plan.pdf (1,9 MB)" in case.body
    assert "plan.pdf" in reply.get_body(("plain",)).get_content()
