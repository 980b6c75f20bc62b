"""Issue #19, review defect: one number could run up ~600 paid SMS answers an hour (the
Telegram per-chat limit applied to SMS), spending the month's SMS budget so that urgent
alerts to everyone stopped going by SMS. On a paid channel the answers to one address
have their own, much lower limit; over it every message is still routed and stored —
only the answers are dropped, and a STOP always takes effect. End to end through the
SMSAPI double's incoming-SMS callback."""

from __future__ import annotations

from handlers.ratelimit import Limits
from sms.optout import CONFIRMS_STOP
from store.models import Case, CaseEvent, OptOut, Outbox
from tests.conftest import Gateway
from tests.doubles.smsapi import SmsApiDouble
from tests.sms import OTHER, PHONE, say

#: the default burst of `EMIL_RATE_PAID_ANSWERS_PER_ADDRESS` (5 an hour)
BURST = 3
STOPPED = "e-Milanówek: koniec SMS-ów na ten numer. Odpisz START, by wrócić."


async def test_thirty_texts_from_one_number_cost_at_most_the_burst_and_all_reach_the_case(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:  # noqa: F811 - fixtures imported
    texts = [f"Wiadomość nr {n}: przy Smoczej 4 nadal leży drzewo." for n in range(30)]
    answers = [answer for text in texts for answer in await say(sms_gw, smsapi, text)]

    # the first opens a case (answered with its number), the next two are answered as
    # added; then silence — no "zwolnij" either, it would cost the same
    case = await Case.get()
    assert len(answers) == BURST and case.number in answers[0]
    assert len(smsapi.to(PHONE)) == BURST
    assert not any("wolnij" in answer for answer in answers)
    # nothing accepted is lost: one case, the other 29 texts added to it, in order
    assert await Case.all().count() == 1 and texts[0] in case.body
    assert await CaseEvent.filter(case_id=case.number, kind="message").order_by(
        "id").values_list("text", flat=True) == texts[1:]
    assert not await Outbox.filter(channel="sms", recipient=PHONE,
                                   idempotency_key__contains=":slow").exists()

    # another number is answered as ever: the limit is per address
    [other] = await say(sms_gw, smsapi, "Lampa na Kościelnej nie świeci.", sender=OTHER)
    assert "Lampa" not in other and await Case.all().count() == 2


async def test_past_the_limit_stop_takes_effect_and_is_confirmed_but_not_for_ever(
        sms_gw: Gateway, smsapi: SmsApiDouble) -> None:  # noqa: F811 - fixtures imported
    for n in range(BURST + 2):
        await say(sms_gw, smsapi, f"Tekst {n}")
    assert len(smsapi.to(PHONE)) == BURST

    # STOP past the limit: it takes effect and its confirmation still goes
    assert await say(sms_gw, smsapi, "STOP") == [STOPPED]
    assert await OptOut.filter(channel="sms", address=PHONE).exists()
    assert smsapi.to(PHONE)[-1].message == STOPPED
    # START takes effect too, unanswered (an ordinary answer, over the limit)
    assert await say(sms_gw, smsapi, "START") == []
    assert not await OptOut.filter(channel="sms", address=PHONE).exists()
    # STOP and START in turn cannot buy an SMS each: the next STOP takes effect silently
    assert await say(sms_gw, smsapi, "STOP") == []
    assert await OptOut.filter(channel="sms", address=PHONE).exists()
    assert not await Outbox.filter(channel="sms", recipient=PHONE, status="pending").exists()
    assert sum(1 for row in await Outbox.filter(channel="sms", recipient=PHONE)
               if row.payload.get(CONFIRMS_STOP)) == 1


def test_the_limit_follows_its_setting() -> None:
    """`EMIL_RATE_PAID_ANSWERS_PER_ADDRESS`: its burst is min(3, the hour's figure)."""
    clock = [0.0]
    limits = Limits(lambda: clock[0], paid_answers_per_address=2)
    assert [limits.paid_answers_per_address.take("sms:+48500100200") for _ in range(3)] == [
        0.0, 0.0, 1800.0]
    assert Limits(lambda: 0.0).paid_answers_per_address.limit.burst == BURST
