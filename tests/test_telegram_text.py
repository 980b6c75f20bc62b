"""Issue #11, "long Telegram texts are lost": texts are split at safe boundaries in UTF-16
code units with tags balanced, and the Bot API double refuses what Telegram would."""

from __future__ import annotations

import re

from bots.split import caption, split_html, units, visible_units
from store.models import Outbox
from tests.conftest import Gateway
from tests.doubles.botapi import telegram_refusal


def accepted(text: str) -> bool:
    return telegram_refusal("sendMessage", {"text": text, "parse_mode": "HTML"}) is None


def test_parts_fit_in_utf16_units_with_tags_balanced() -> None:
    text = "<b>Zebranie</b>\n" + "Zażółć gęślą jaźń 😀 &amp; <i>ważne</i> <a href=\"x\">link</a> " * 400
    parts = split_html(text)
    assert len(parts) > 2
    assert all(visible_units(p) <= 4096 and accepted(p) for p in parts)
    # nothing lost: the visible text of the parts is the visible text of the whole
    strip = lambda t: re.sub(r"<[^>]+>", "", t).replace(" ", "").replace("\n", "")  # noqa: E731
    assert "".join(strip(p) for p in parts) == strip(text)


def test_one_endless_word_and_astral_characters() -> None:
    for text in ("x" * 10_000, "😀" * 5000, "<pre>" + "a" * 9000 + "</pre>"):
        parts = split_html(text)
        assert all(visible_units(p) <= 4096 and accepted(p) for p in parts), text[:10]
    # an emoji is two units: 2,049 of them do not fit in one message
    assert len(split_html("😀" * 2049)) == 2 and units("😀") == 2


def test_caption_is_cut_to_1024_and_marked() -> None:
    text = "<b>" + "a" * 2000 + "</b>"
    cut = caption(text)
    assert cut.endswith("…") and visible_units(cut) <= 1024
    assert telegram_refusal("sendDocument", {"caption": cut, "parse_mode": "HTML"}) is None


def test_the_double_refuses_what_telegram_refuses() -> None:
    assert not accepted("x" * 4097)
    assert not accepted("😀" * 2049)  # 4,098 UTF-16 units, 2,049 Python characters
    assert not accepted("<b>unclosed")
    assert not accepted("a < b")
    assert not accepted("<blink>x</blink>")
    assert accepted("<b>ok</b> &amp; &lt;")


async def test_a_long_staff_answer_reaches_the_resident_whole(gw: Gateway) -> None:
    await gw.linked(5151, "Pan Długi")
    await gw.tg(5151, "/sprawa")
    await gw.tg(5151, "Wniosek o informację")
    await gw.tg(5151, "Proszę o pełną odpowiedź.")
    number = re.search(r"UM-\d{4}-\d{6}", gw.botapi.texts_to(5151)[-1]).group(0)
    answer = ("Odpowiadamy szczegółowo 😀 <na wszystkie> punkty & podpunkty.\n" * 120).strip()
    resp = await gw.client.post(f"/api/v1/cases/{number}/events", headers=gw.admin,
                                json={"status": "resolved", "note": answer})
    assert resp.status == 201
    await gw.drain()
    row = await Outbox.filter(idempotency_key__startswith="case-event").first()
    assert row.status == "sent", row.last_error
    received = gw.botapi.texts_to(5151)[-3:]
    assert all(visible_units(t) <= 4096 for t in received)
    joined = "".join(received)
    assert joined.count("Odpowiadamy szczegółowo") == 120 and "&lt;na wszystkie&gt;" in joined
