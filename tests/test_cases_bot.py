"""Cases in the Telegram bot: PTB talking HTTP to the Bot API double."""

from __future__ import annotations

import re

from gateway.keys import DISPATCHER, INBOX
from handlers.cases import contacts_of
from store.models import Case, Identity, LinkCode
from tests.conftest import WEBHOOK_SECRET, Gateway, make_mail
from tests.doubles.botapi import callback_update, message_update
from tests.mailauth import sign, verifying


async def test_start_with_code_links_once(gw: Gateway) -> None:
    person = await gw.person("Anna Nowak")
    resp = await gw.client.post(f"/api/v1/people/{person}/link-codes", headers=gw.admin)
    body = await resp.json()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", body["code"])
    assert body["link"] == f"https://t.me/emilanowek_bot?start={body['code']}"
    [reply] = await gw.tg(501, f"/start {body['code']}")
    assert "Anna Nowak" in reply
    assert await Identity.filter(channel="telegram", address="501", person_id=person).exists()
    [again] = await gw.tg(502, f"/start {body['code']}")  # single use
    assert "nieprawidłowy" in again
    assert not await Identity.filter(address="502").exists()


async def test_expired_code_is_refused(gw: Gateway) -> None:
    person = await gw.person()
    resp = await gw.client.post(f"/api/v1/people/{person}/link-codes", headers=gw.admin)
    code = (await resp.json())["code"]
    gw.clock.advance(days=2)
    [reply] = await gw.tg(503, f"/start {code}")
    assert "wygasł" in reply
    assert await LinkCode.filter(code=code, used_at__isnull=True).exists()


async def test_case_dialogue(gw: Gateway) -> None:
    [ask] = await gw.tg(601, "/sprawa")
    assert "temat" in ask
    [ask_body] = await gw.tg(601, "Zepsuta latarnia")
    assert "Zepsuta latarnia" in ask_body
    [done] = await gw.tg(601, "Przy ul. Wojska Polskiego 5 nie świeci od tygodnia.")
    case = await Case.get()
    assert case.number in done and "Kod dostępu" in done
    assert await contacts_of(case) == {("telegram", "601")}
    assert case.body.startswith("Przy ul. Wojska")
    # the conversation is over: free text now gets help
    [help_text] = await gw.tg(601, "dziękuję")
    assert "/pomoc" in help_text


async def test_dialogue_can_be_cancelled(gw: Gateway) -> None:
    await gw.tg(602, "/sprawa")
    [reply] = await gw.tg(602, "/anuluj")
    assert "Przerwano" in reply
    await gw.tg(602, "to nie temat sprawy")
    assert await Case.all().count() == 0


async def test_status_only_for_the_requester(gw: Gateway) -> None:
    await gw.tg(701, "/sprawa")
    await gw.tg(701, "Dziura w drodze")
    await gw.tg(701, "Na ul. Spacerowej.")
    number = (await Case.get()).number
    [mine] = await gw.tg(701, f"/status {number}")
    assert "przyjęta" in mine and "Dziura w drodze" in mine
    [theirs] = await gw.tg(702, f"/status {number}")
    [missing] = await gw.tg(702, "/status UM-2026-999999")
    assert "Dziura" not in theirs
    assert theirs.replace(number, "X") == missing.replace("UM-2026-999999", "X")


async def test_help_unknown_command_and_english(gw: Gateway) -> None:
    [help_pl] = await gw.tg(801, "/pomoc")
    assert "/sprawa" in help_pl and "/status" in help_pl
    [guess] = await gw.tg(801, "/statsu")
    assert "Czy chodziło o /status" in guess
    [help_en] = await gw.tg(802, "/help", language="en")
    assert "what I can do" in help_en and "/new" in help_en


async def test_html_is_escaped_for_telegram(gw: Gateway) -> None:
    await gw.tg(901, "/sprawa")
    await gw.tg(901, "<b>Pogrubienie</b> & <script>")
    [done] = await gw.tg(901, "Opis <i>kursywą</i>")
    assert "&lt;b&gt;Pogrubienie&lt;/b&gt; &amp; &lt;script&gt;" in done
    assert gw.botapi.messages_to(901)[-1].params["parse_mode"] == "HTML"


async def test_one_case_one_thread_across_channels(gw: Gateway) -> None:
    """Opened by mail, followed up in the bot, answered by staff on the last channel."""
    person = await gw.linked(1001, "Ewa Mail", email="ewa@example.pl")
    gw.services.mail_auth = verifying("example.pl")  # her provider signs with DKIM
    signed = sign(make_mail("Wycinka", "Proszę o zgodę.", sender="ewa@example.pl").as_bytes(),
                  "example.pl")
    await gw.mail(signed, sender="ewa@example.pl")
    case = await Case.get()
    assert case.person_id == person
    [status] = await gw.tg(1001, f"/status {case.number}")
    assert "Wycinka" in status
    resp = await gw.client.post(f"/api/v1/cases/{case.number}/events", headers=gw.admin,
                                json={"status": "in_progress", "note": "Oględziny w piątek."})
    assert resp.status == 201
    await gw.drain()
    notice = gw.botapi.texts_to(1001)[-1]
    assert "w toku" in notice and "Oględziny w piątek." in notice


async def test_update_with_same_id_is_handled_once(gw: Gateway) -> None:
    data = message_update(1101, "/pomoc", update_id=424242)
    await gw.update(data)
    await gw.update(data)
    assert len(gw.botapi.texts_to(1101)) == 1


async def test_webhook_secret_is_checked(gw: Gateway) -> None:
    resp = await gw.client.post("/telegram/webhook", json=message_update(1, "/pomoc"),
                                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
    assert resp.status == 401
    resp = await gw.client.post("/telegram/webhook", json={"no": "id"},
                                headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret-for-tests"})
    assert resp.status == 400


async def test_unknown_callback_is_answered_and_dropped(gw: Gateway) -> None:
    await gw.update(callback_update(1201, "nonsense:1"))
    assert [s.method for s in gw.botapi.sent] == ["answerCallbackQuery"]


async def test_stop_unlinks(gw: Gateway) -> None:
    await gw.linked(1301)
    [reply] = await gw.tg(1301, "/stop")
    assert "Odłączono" in reply
    [refused] = await gw.tg(1301, "/ustawienia")
    assert "nie jest połączony" in refused


async def test_link_by_email_gives_a_deep_link(gw: Gateway) -> None:
    [reply] = await gw.mail(make_mail("telegram", "", sender="nowy@example.pl"),
                            sender="nowy@example.pl")
    text = reply.get_body(("plain",)).get_content()
    code = re.search(r"start=([A-Za-z0-9_-]+)", text).group(1)
    await gw.tg(1401, f"/start {code}")
    identities = await Identity.all().values_list("channel", "address")
    assert set(identities) == {("email", "nowy@example.pl"), ("telegram", "1401")}


async def test_a_chat_linked_mid_batch_is_known_to_its_next_message(gw: Gateway) -> None:
    """The inbox looks a batch's senders up together; a `/start CODE` earlier in the same
    batch must still count for the same chat's next message."""
    person = await gw.person("Anna Nowak")
    resp = await gw.client.post(f"/api/v1/people/{person}/link-codes", headers=gw.admin)
    code = (await resp.json())["code"]
    for text in (f"/start {code}", "/ustawienia"):
        resp = await gw.client.post("/telegram/webhook", json=message_update(505, text),
                                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
        assert resp.status == 200  # stored, not yet handled
    assert await gw.app[INBOX].drain() == 2  # one batch
    await gw.app[DISPATCHER].drain()
    linked, settings = gw.botapi.texts_to(505)
    assert "Anna Nowak" in linked
    assert "nie jest połączony" not in settings
