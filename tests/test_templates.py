"""Issue #12, "Polish in every template": every template renders in both languages with
sample data, shows no raw code to a person, and gives Telegram HTML that Telegram takes."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bots import channel as telegram_channel
from handlers.catalogue import Record
from handlers.quota import REASONS, Refused
from handlers.render import TEMPLATES, Renderer
from handlers.router import ROUTES
from mail import channel as mail_channel
from sms import channel as sms_channel
from tests.doubles.botapi import telegram_refusal

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
DUE = date(2026, 12, 4)
ITEM = {  # one record with every attribute a list template reads (announcements, homework)
    "id": 7, "title": "Zebranie", "status": "published", "recipients": 3, "queued": 0,
    "sent": 2, "delivered": 1, "bounced": 0, "failed": 0, "acknowledged": 1, "subject": "matematyka", "kind": "test",
    "due": DUE, "description": "Rozdział 3"}
SAMPLE = {
    "case": {"number": "UM-2026-000042", "status": "in_progress", "subject": "Dziura w drodze"},
    "history": [{"created_at": NOW, "kind": kind, "status": "in_progress", "text": "Uwaga"}
                for kind in ("created", "status", "message", "note")],
    "event": {"text": "Kontrola w piątek", "status": "resolved", "kind": "status"},
    "access_code": "ABCD-EFGH-JKLM-NPQR", "number": "UM-2026-000042", "reference": "a1b2c3d4",
    "person": {"name": "Anna", "quiet_start": "22:00", "quiet_end": "07:00", "language": "pl",
               "channel_order": ["email", "telegram"], "digest_mode": "daily",
               "digest_hour": 18},
    "modes": {"grades": "digest", "attendance": "instant", "remarks": "off",
              "homework": "instant", "messages": "instant", "topics": "off"},
    "items": [ITEM, {**ITEM, "status": "scheduled", "kind": "quiz"}],
    "student": {"name": "Kasia Nowak", "class_name": "4b"},
    "about": {"name": "Kasia Nowak", "class_name": "4b"},
    "entries": [{"date": DUE, "period": 1, "status": s, "subject": "fizyka", "correction": c}
                for s, c in (("absent", False), ("late", False), ("excused", True))],
    "counts": {"absent": 1, "late": 1, "excused": 1},
    "remarks": [{"kind": k, "text": "Pomoc", "teacher": "p. Kowalska", "recorded_at": NOW,
                 "correction": False} for k in ("positive", "negative", "neutral")],
    "grades": [{"subject": "Polski", "value": "5", "weight": "2", "category": "Test",
                "recorded_at": NOW}],
    "results": [{"renewed": True, "title": "Lalka", "due": DUE}] + [
        {"renewed": False, "title": "Potop", "reason": r}
        for r in ("reserved", "too_many", "too_soon", "overdue", "blocked")],
    "loans": [{"title": "Lalka", "due": DUE, "overdue": True, "days": 3, "level": "overdue-7"}],
    "failures": [{"channel": "telegram", "recipient": "123", "error": "zablokowany"}],
    "unreachable": [{"card": "K1", "name": "Jan", "level": "overdue-7@2026-11-19",
                     "titles": ["Lalka"]}],
    "sections": [{"kind": "attendance", "lines": ["Kasia: 1 nieobecność"]}],
    "routes": [route.help for route in ROUTES], "linked": True, "units": ["urzad"],
    "problem": "foreign_units", "count": 2, "renewed": 1, "messages": 5, "loans_count": 6,
    "day": NOW, "date": "26.11.2026", "code": "AbC_123", "bot": "emilanowek_bot",
    "announcement": {"title": "Zebranie", "body": "Jutro **o 10**", "id": 7},
    "data": {"title": "Zebranie", "audience": {"units": ["urzad"], "roles": []}},
    "body": "Jutro <b>o 10</b>", "title": "Wycieczka", "sender": "Wychowawczyni",
    "class_name": "4b", "name": "Anna", "command": "ocenki", "guess": "oceny", "word": "kanal",
    "mailbox": "sprawy", "changed": True, "id": 7, "token": "abcdefgh12345678",
    "link": "https://e.milanowek.example/panel/wejscie/abc", "minutes": 10,
    "new": [{"subject": "Polski", "value": "5", "weight": None, "category": None,
             "recorded_at": NOW}],
    "corrections": [], "too_short": False,
    "by_level": {"due-soon": 2, "overdue-7": 1},
    "subjects": [{"subject": "matematyka", "lessons": [
        {"date": DUE, "period": 2, "topic": "Ułamki <zwykłe> & dziesiętne", "teacher": "p. Nowak"}]}],
    "days": 7,
}
#: where two templates read one name differently
OVERRIDES = {"library_summary": {"loans": 6, "unreachable_count": 1, "failed_count": 1},
             "attachments_full": {"used": 10 * 1024 ** 3, "limit": 10 * 1024 ** 3},
             "sms_budget_spent": {"month": "2026-12", "parts": 625},
             "lists_overview": {"lists": [{"id": "nowosci", "title": "Nowości", "count": n,
                                           "description": "Co przyszło", "subscribed": n == 2}
                                          for n in (1, 2, 5)]},
             "lists_changed": {"subscribed": True},
             "reading_list_new": {"list": {"id": "nowosci", "title": "Nowości"}, "items": [
                 {"title": "Lalka", "author": "Bolesław Prus", "year": 1890, "note": "nowe"},
                 {"title": "Potop", "author": "", "year": None, "note": ""}]}}
#: a catalogue page (handlers/catalogue.py): its records as gateway/sru.py reads them
OVERRIDES["catalogue_results"] = {
    "query": "autor: Sienkiewicz", "total": 6, "first": 1, "last": 5, "more": 6, "narrow": True,
    "records": [Record("Potop", "Sienkiewicz, Henryk", "2012", "821.162.1-3 SIE", "available",
                       ("Historia Polski — 17 w.",)),
                Record("Krzyżacy", None, None, None, "on_loan")]}
#: a file refused for each reason (handlers/quota.py)
SAMPLE["too_large"] = [Refused(f"{reason}.pdf", 2_000_000, reason, 20 if reason == "case_files"
                               else 10_485_760) for reason in REASONS]
SAMPLE["children"] = [{"student": SAMPLE["student"], "new": SAMPLE["new"], "corrections": []}]
#: stored codes that must never reach a person as they are (issue #12's list)
RAW = re.compile(r"\b(due-soon|overdue-\d+|in_progress)\b|\(ref:")
#: in Polish text, English codes are raw too (in English text they are words)
RAW_PL = re.compile(r"\b(published|scheduled|received|created|telegram|email|positive|"
                    r"negative|homework|quiz|pending|cancelled|retracted)\b")


def all_templates() -> list[tuple[str, str, str]]:
    found = []
    for lang in ("pl", "en"):
        for path in sorted((Path(TEMPLATES) / lang).glob("*.j2")):
            name, channel, _ = path.name.split(".")
            found.append((lang, name, channel))
    return found


@pytest.mark.parametrize("lang,name,channel", all_templates())
def test_every_template_renders_without_raw_codes(lang: str, name: str, channel: str) -> None:
    renderer = Renderer(ZoneInfo("Europe/Warsaw"), "https://e.milanowek.example",
                        facts={"link_code_hours": 24, "renew_window_days": 7})
    render = {"email": mail_channel.render, "telegram": telegram_channel.render,
              "sms": sms_channel.render}[channel]
    rendered = render(renderer, name, lang, {**SAMPLE, **OVERRIDES.get(name, {})})
    for part, text in rendered.items():
        assert text.strip() or part == "html", (name, part)
        # commands people type ("/ustawienia kanał email") are instructions, not codes
        readable = "\n".join(line for line in re.sub(r"<[^>]+>", "", text).splitlines()
                             if "/" not in line)
        found = RAW.search(readable) or (RAW_PL.search(readable) if lang == "pl" else None)
        assert found is None, f"{lang}/{name}.{channel} {part}: raw '{found.group(0)}'"
    if channel == "telegram":
        assert telegram_refusal("sendMessage", {"text": rendered["text"],
                                                "parse_mode": "HTML"}) is None, name
