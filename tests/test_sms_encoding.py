"""SMS parts and encoding (sms/encoding.py), with Polish text: what a message costs is
what the provider charges, so the counts are exact at every boundary."""

from __future__ import annotations

import pytest

from sms.channel import normalise, plain
from sms.encoding import count, fit, transliterate

POLISH = "Zażółć gęślą jaźń"


def test_one_polish_letter_makes_the_whole_message_ucs2() -> None:
    assert count("Zamknieta ulica Koscielna").encoding == "gsm"
    # a single "ę" and the message is UCS-2: 70 characters a part instead of 160
    assert count("Zamknięta ulica Kościelna").encoding == "ucs2"
    assert count("a" * 159 + "ą").parts == 3  # 160 units of UCS-2: 67 + 67 + 26
    assert count(transliterate("a" * 159 + "ą")).parts == 1


@pytest.mark.parametrize(("text", "parts"), [
    ("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("ą" * 70, 1), ("ą" * 71, 2), ("ą" * 134, 2), ("ą" * 135, 3),
])
def test_single_and_concatenated_limits(text: str, parts: int) -> None:
    assert count(text).parts == parts


def test_the_extension_table_costs_two_septets() -> None:
    assert count("€").units == 2 and count("€").encoding == "gsm"
    assert count("a" * 158 + "€").parts == 1  # 160 septets
    assert count("a" * 159 + "€").parts == 2  # 161
    for char in "^{}\\[~]|\f":
        assert count(char).units == 2, repr(char)
    # an escape pair is never split: 152 septets, then "€" goes whole into part two
    assert count("a" * 152 + "€" + "a" * 151).parts == 2  # 152 + 153
    assert count("a" * 152 + "€" + "a" * 152).parts == 3  # 306 septets, yet three parts


def test_gsm_letters_outside_ascii_stay_gsm() -> None:
    assert count("Zürich, Åland, España, café £5").encoding == "gsm"
    assert count("Ç").encoding == "gsm" and count("ç").encoding == "ucs2"  # as in the table


def test_an_emoji_is_two_code_units_and_never_split() -> None:
    assert count("🚨").units == 2 and count("🚨").encoding == "ucs2"
    assert count("🚨" * 35).parts == 1  # 70 units
    assert count("a" * 66 + "🚨" + "a" * 2).parts == 1  # 70 units
    assert count("a" * 67 + "🚨" + "a" * 2).parts == 2  # 71
    # 66 units, then the pair would straddle the 67th: it moves to part two whole
    assert count("ą" * 66 + "🚨" + "ą" * 65).parts == 2
    assert count("ą" * 66 + "🚨" + "ą" * 66).parts == 3


def test_transliteration_takes_polish_letters_to_ascii() -> None:
    assert transliterate(POLISH) == "Zazolc gesla jazn"
    assert transliterate("ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż") == "ACELNOSZZ acelnoszz"
    assert count(transliterate(POLISH)).encoding == "gsm"


def test_fit_keeps_a_short_text_whole() -> None:
    assert fit(POLISH, 1, "https://e.milanowek.pl/a/1") == POLISH


def test_fit_cuts_between_words_and_ends_with_the_link() -> None:
    link = "https://e.milanowek.pl/ogloszenia/17"
    text = " ".join(["Wyłączenie wody na ulicach Kościelnej i Warszawskiej"] * 12)
    for max_parts in (1, 2, 3):
        fitted = fit(text, max_parts, link)
        assert count(fitted).parts <= max_parts
        assert fitted.endswith(f"…\n{link}")
        kept = fitted.removesuffix(f"…\n{link}")
        assert text.startswith(kept) and text[len(kept)] == " "  # a whole word last
        # and nothing more would have fitted: the next word breaks the limit
        longer = text[:text.index(" ", len(kept) + 1)] + f"…\n{link}"
        assert count(longer).parts > max_parts


def test_fit_in_the_default_alphabet_keeps_it() -> None:
    text = transliterate(" ".join(["Wylaczenie wody na ulicy Koscielnej"] * 20))
    fitted = fit(text, 2, "https://e.milanowek.pl/a/2")
    assert count(fitted).encoding == "gsm" and count(fitted).parts == 2
    assert "...\nhttps://e.milanowek.pl/a/2" in fitted


def test_fit_without_a_link_ends_with_an_ellipsis() -> None:
    fitted = fit("ą " * 200, 1)
    assert fitted.endswith("…") and count(fitted).parts == 1


@pytest.mark.parametrize(("typed", "e164"), [
    ("500 100 200", "+48500100200"), ("+48 500-100-200", "+48500100200"),
    ("0048500100200", "+48500100200"), ("+49 151 23456789", "+4915123456789"),
])
def test_numbers_are_normalised_to_e164(typed: str, e164: str) -> None:
    assert normalise(typed) == e164


@pytest.mark.parametrize("typed", ["12 345", "22 755 90 00", "jan@example.pl", "", "+48" + "5" * 40])
def test_what_no_sms_reaches_is_no_number(typed: str) -> None:
    """Too short, a landline (Milanówek's town hall's), not a number at all."""
    assert normalise(typed) is None


def test_telegram_html_becomes_plain_text() -> None:
    html = ('🚨 📢 <b>Awaria &amp; przerwa</b>\n<a href="https://e.milanowek.pl/x">Szczegóły</a>'
            ' i <a href="https://a.pl">https://a.pl</a> &lt;3')
    assert plain(html) == ("🚨 📢 Awaria & przerwa\nSzczegóły (https://e.milanowek.pl/x)"
                           " i https://a.pl <3")
