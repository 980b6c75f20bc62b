"""Issue #11, "mail identity is forgeable" and "a group chat becomes a person": who a
sender is gets decided in one place (handlers/identity.py), from proof, never a header."""

from __future__ import annotations

import re

from gateway.config import Settings
from handlers.cases import contacts_of
from mail.authenticate import MailAuth
from store.models import Case, CaseEvent, Identity, Renewal
from tests.conftest import Gateway, make_mail
from tests.doubles.botapi import message_update
from tests.mailauth import sign, verifying
from tests.test_library import loan, sync

RESIDENT = "anna@example.pl"


async def resident_case(gw: Gateway) -> tuple[str, str, str]:
    """Anna's case by mail: (number, access code, Message-ID of our confirmation)."""
    [confirmation] = await gw.mail(make_mail("Dziura w drodze", "ul. Kościuszki",
                                             sender=RESIDENT), sender=RESIDENT)
    text = confirmation.get_body(("plain",)).get_content()
    code = re.search(r"Kod dostępu: ([A-Z0-9-]+)", text).group(1)
    return (await Case.get()).number, code, confirmation["Message-ID"]


async def test_reply_to_is_never_the_sender(gw: Gateway) -> None:
    number, _, ours = await resident_case(gw)
    forged = make_mail(f"Re: [{number}] Dziura", "Proszę przesłać odpowiedź tutaj.",
                       sender="x@evil.example", Reply_To=RESIDENT, In_Reply_To=ours)
    [answer] = await gw.mail(forged, sender="x@evil.example")
    assert answer["To"] == "x@evil.example"  # answered where it came from, refused
    assert "nie możemy podać" in answer.get_body(("plain",)).get_content()
    assert await CaseEvent.filter(kind="message").count() == 0


async def test_a_forged_from_changes_nothing_and_asks_for_a_reply(gw: Gateway) -> None:
    number, _, _ = await resident_case(gw)
    forged = make_mail(f"Re: [{number}] Dziura", "Rezygnuję ze sprawy.", sender=RESIDENT)
    [ask] = await gw.mail(forged, sender="bounce@evil.example")
    assert ask["To"] == RESIDENT  # a forger can only make us write to the real owner
    assert ask["Subject"].endswith("Prosimy o potwierdzenie adresu")
    assert "Rezygnuję" not in ask.get_body(("plain",)).get_content()
    assert await CaseEvent.filter(kind="message").count() == 0
    # replying to that very message is the proof
    reply = make_mail(f"Re: {ask['Subject']}", "Rezygnuję ze sprawy.", sender=RESIDENT,
                      In_Reply_To=ask["Message-ID"])
    [added] = await gw.mail(reply, sender=RESIDENT)
    assert await CaseEvent.filter(kind="message", text="Rezygnuję ze sprawy.").count() == 1


async def test_the_access_code_or_a_dmarc_pass_is_proof_too(gw: Gateway) -> None:
    number, code, _ = await resident_case(gw)
    with_code = make_mail(f"[{number}] uzupełnienie", f"Kod: {code.lower()}\nZałączam plan.",
                          sender=RESIDENT)
    await gw.mail(with_code, sender=RESIDENT)
    assert await CaseEvent.filter(kind="message", text__contains="Załączam plan").exists()
    gw.services.mail_auth = verifying("example.pl")
    signed = sign(make_mail(f"[{number}] jeszcze jedno", "Zdjęcie w załączniku.",
                            sender=RESIDENT).as_bytes(), "example.pl")
    await gw.mail(signed, sender=RESIDENT)
    assert await CaseEvent.filter(kind="message", text="Zdjęcie w załączniku.").exists()
    # a signature by another domain is no proof for this one
    other = sign(make_mail(f"[{number}] podróbka", "Podpisane cudzą domeną.",
                           sender=RESIDENT).as_bytes(), "evil.example")
    gw.services.mail_auth = verifying("example.pl", "evil.example")
    await gw.mail(other, sender=RESIDENT)
    assert not await CaseEvent.filter(kind="message", text="Podpisane cudzą domeną.").exists()


async def test_a_forged_from_does_not_file_a_case_in_a_registered_name(gw: Gateway) -> None:
    person = await gw.person("Anna", email=RESIDENT)
    await gw.mail(make_mail("Wniosek", "w imieniu Anny", sender=RESIDENT), sender=RESIDENT)
    case = await Case.get()
    assert case.person_id is None and await contacts_of(case) == {("email", RESIDENT)}
    gw.services.mail_auth = verifying("example.pl")
    signed = sign(make_mail("Wniosek 2", "naprawdę od Anny", sender=RESIDENT).as_bytes(),
                  "example.pl")
    await gw.mail(signed, sender=RESIDENT)
    assert (await Case.get(subject="Wniosek 2")).person_id == person


async def test_a_forged_renewal_renews_nothing(gw: Gateway) -> None:
    await gw.person("Czytelniczka", library_card="K9", email=RESIDENT)
    await sync(gw, [loan(1, "K9")])
    [ask] = await gw.mail(make_mail("przedłuż", "", sender=RESIDENT,
                                    to="biblioteka@milanowek.example"),
                          to="biblioteka", sender=RESIDENT)
    assert "Prosimy o potwierdzenie" in ask["Subject"]
    assert await Renewal.all().count() == 0
    [done] = await gw.mail(make_mail("Re: przedłuż", "przedłuż", sender=RESIDENT,
                                     In_Reply_To=ask["Message-ID"],
                                     to="biblioteka@milanowek.example"),
                           to="biblioteka", sender=RESIDENT)
    assert await Renewal.all().count() == 1


async def test_authentication_results_only_from_the_trusted_upstream(gw: Gateway) -> None:
    gw.services.mail_auth = MailAuth(authserv_id="milanowek.example",
                                     trusted_authserv="mx.milanowek.example")
    number, _, _ = await resident_case(gw)
    # a header the forger wrote themselves, with another authserv-id
    forged = make_mail(f"[{number}] a", "od fałszerza", sender=RESIDENT)
    forged["Authentication-Results"] = "mx.evil.example; dmarc=pass header.from=example.pl"
    await gw.mail(forged, sender=RESIDENT)
    assert not await CaseEvent.filter(kind="message", text="od fałszerza").exists()
    # the trusted MTA's verdict, on top
    real = make_mail(f"[{number}] b", "od Anny", sender=RESIDENT)
    raw = (b"Authentication-Results: mx.milanowek.example; spf=pass smtp.mailfrom=example.pl;"
           b" dkim=pass header.d=example.pl; dmarc=pass header.from=example.pl\r\n"
           + real.as_bytes())
    await gw.mail(raw, sender=RESIDENT)
    assert await CaseEvent.filter(kind="message", text="od Anny").exists()


def group_update(chat_id: int, text: str, user_id: int) -> dict:
    data = message_update(chat_id, text, user_id=user_id)
    data["message"]["chat"] = {"id": chat_id, "type": "group", "title": "Rodzice 4b"}
    return data


async def test_a_group_cannot_be_linked_or_see_anyones_data(gw: Gateway) -> None:
    parent = await gw.person("Rodzic", roles=["parent"])
    resp = await gw.client.post(f"/api/v1/people/{parent}/link-codes", headers=gw.admin)
    code = (await resp.json())["code"]
    await gw.update(group_update(-100500, f"/start {code}", user_id=77))
    [refusal] = gw.botapi.texts_to(-100500)
    assert "prywatnym" in refusal
    assert not await Identity.filter(channel="telegram", address="-100500").exists()
    # a group that was linked before this fix is still nobody
    await Identity.create(person_id=parent, channel="telegram", address="-100500")
    await gw.update(group_update(-100500, "/oceny", user_id=78))
    assert "prywatnym" in gw.botapi.texts_to(-100500)[-1]
    assert not any("Brak" in t or "ocen" in t for t in gw.botapi.texts_to(-100500))
    # the code still works in a private chat
    replies = await gw.tg(7777, f"/start {code}")
    assert "połączony" in replies[-1]


def test_mail_auth_setting_is_checked() -> None:
    import pytest

    with pytest.raises(ValueError):
        Settings(_env_file=None, mail_auth="maybe")  # type: ignore[call-arg]
