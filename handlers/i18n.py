"""Plurals, dates and status names in Polish and English.

Plural categories come from CLDR through Babel: Polish has `one` (1), `few` (2–4, 22–24…)
and `many` (0, 5–21, 25…), so "1 nowa ocena", "2 nowe oceny", "5 nowych ocen".
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from markupsafe import Markup, escape

from handlers.signatures import printable

LANGUAGES = ("pl", "en")
DEFAULT_LANGUAGE = "pl"

STATUS_LABELS = {
    "pl": {
        "received": "przyjęta",
        "in_progress": "w toku",
        "waiting": "czeka na uzupełnienie",
        "resolved": "załatwiona",
        "rejected": "odrzucona",
    },
    "en": {
        "received": "received",
        "in_progress": "in progress",
        "waiting": "waiting for more information",
        "resolved": "resolved",
        "rejected": "rejected",
    },
}

#: Open311 groups our statuses into open and closed
OPEN311 = {
    "received": "open",
    "in_progress": "open",
    "waiting": "open",
    "resolved": "closed",
    "rejected": "closed",
}


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


@lru_cache(maxsize=None)
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


def plural(n: int, lang: str, *forms: str) -> str:
    """Pick the form for `n`: Polish takes (one, few, many), English (one, other)."""
    category = _locale(language(lang)).plural_form(abs(int(n)))
    if language(lang) == "pl":
        one, few, many = forms
        return {"one": one, "few": few}.get(category, many)
    one, other = forms[0], forms[-1]
    return one if category == "one" else other


def status_label(status: str, lang: str) -> str:
    return STATUS_LABELS[language(lang)].get(status, status)


def long_date(value: date | datetime, lang: str, zone: ZoneInfo | None = None) -> str:
    """"25 listopada 2026" / "25 November 2026"."""
    if isinstance(value, datetime):
        value = value.astimezone(zone) if zone else value
        value = value.date()
    return format_date(value, "d MMMM y", locale=language(lang))


def short_datetime(value: datetime, lang: str, zone: ZoneInfo) -> str:
    """"25.11.2026, 14:05" in Polish, "25 Nov 2026, 14:05" in English."""
    pattern = "dd.MM.y, HH:mm" if language(lang) == "pl" else "d MMM y, HH:mm"
    return format_datetime(value.astimezone(zone), pattern, locale=language(lang))


#: Polish weekdays after "w" take the accusative: w środę, w sobotę, w niedzielę
_ACCUSATIVE = {"środa": "środę", "sobota": "sobotę", "niedziela": "niedzielę"}


def on_day(value: date, lang: str) -> str:
    """"w piątek 4 grudnia", "we wtorek 1 grudnia" / "on Friday 4 December"."""
    if language(lang) == "pl":
        weekday = format_date(value, "EEEE", locale="pl")
        weekday = _ACCUSATIVE.get(weekday, weekday)
        preposition = "we" if weekday == "wtorek" else "w"
        return f"{preposition} {weekday} {format_date(value, 'd MMMM', locale='pl')}"
    return f"on {format_date(value, 'EEEE d MMMM', locale='en')}"


def short_day(value: date, lang: str) -> str:
    """"wt. 17.11" / "Tue 17 Nov": a day in a list of lessons, weekday first (which day
    of the week a lesson was is what a parent remembers)."""
    pattern = "EEE dd.MM" if language(lang) == "pl" else "EEE d MMM"
    return format_date(value, pattern, locale=language(lang))


#: codes the gateway keeps, as people read them (no raw code is ever shown to a person)
LABELS = {
    "pl": {"published": "opublikowane", "scheduled": "zaplanowane", "pending": "czeka na "
           "potwierdzenie", "cancelled": "anulowane", "retracted": "wycofane",
           "due-soon": "termin za 2 dni", "overdue-1": "1 dzień po terminie",
           "overdue-7": "7 dni po terminie", "overdue-14": "14 dni po terminie",
           "telegram": "Telegram", "email": "e-mail", "sms": "SMS", "pl": "polski", "en": "angielski",
           "created": "sprawa przyjęta", "message": "wiadomość", "note": "notatka urzędu",
           "status": "zmiana statusu", "homework": "zadanie domowe", "test": "sprawdzian",
           "quiz": "kartkówka",
           # channels and sources of the console and the audit trail
           "api": "API", "web": "strona sprawy", "console": "panel", "bot": "bot",
           "mail": "poczta", "cli": "wiersz poleceń",
           "case.reply": "odpowiedź w sprawie", "case.note": "notatka w sprawie",
           "case.status": "zmiana statusu sprawy", "case.assign": "przydział sprawy",
           "console.sign_in": "logowanie do panelu",
           "console.sign_out_everywhere": "wylogowanie ze wszystkich urządzeń",
           "person.create": "dodanie osoby", "person.preferences": "zmiana ustawień osoby",
           "person.link_code": "kod połączenia z botem", "person.export": "eksport danych (RODO)",
           "person.erase": "usunięcie danych (RODO)", "api_key.create": "nowy klucz API",
           "api_key.revoke": "unieważnienie klucza API",
           "announcement.create": "nowe ogłoszenie", "announcement.cancel": "anulowanie ogłoszenia",
           "announcement.confirm": "potwierdzenie ogłoszenia",
           "announcement.retract": "wycofanie ogłoszenia",
           "library.overdue_run": "przypomnienia biblioteki", "student.upsert": "zmiana ucznia",
           "length": "długość", "assignee": "przydzielona osoba", "public": "jawne",
           "roles": "role", "units": "jednostki", "fields": "pola", "scopes": "uprawnienia",
           "label": "nazwa", "due": "dzień", "sessions": "sesje", "title": "tytuł",
           "audience": "odbiorcy", "priority": "pilność", "guardians": "opiekunowie",
           "notices": "powiadomienia", "kept_cases": "zachowane sprawy"},
    "en": {"published": "published", "scheduled": "scheduled", "pending": "awaiting "
           "confirmation", "cancelled": "cancelled", "retracted": "retracted",
           "due-soon": "due in 2 days", "overdue-1": "1 day overdue", "overdue-7": "7 days "
           "overdue", "overdue-14": "14 days overdue", "telegram": "Telegram",
           "email": "email", "sms": "SMS", "pl": "Polish", "en": "English", "created": "case received",
           "message": "message", "note": "office note", "status": "status change",
           "homework": "homework", "test": "test", "quiz": "quiz",
           "api": "API", "web": "case page", "console": "console", "bot": "bot",
           "mail": "mail", "cli": "command line",
           "case.reply": "reply in a case", "case.note": "note in a case",
           "case.status": "case status change", "case.assign": "case assignment",
           "console.sign_in": "console sign-in",
           "console.sign_out_everywhere": "signed out everywhere",
           "person.create": "person added", "person.preferences": "person's settings changed",
           "person.link_code": "bot link code", "person.export": "data export (GDPR)",
           "person.erase": "data erasure (GDPR)", "api_key.create": "new API key",
           "api_key.revoke": "API key revoked",
           "announcement.create": "new announcement", "announcement.cancel": "announcement cancelled",
           "announcement.confirm": "announcement confirmed",
           "announcement.retract": "announcement retracted",
           "library.overdue_run": "library reminders", "student.upsert": "student changed",
           "length": "length", "assignee": "assignee", "public": "public",
           "roles": "roles", "units": "units", "fields": "fields", "scopes": "scopes",
           "label": "label", "due": "day", "sessions": "sessions", "title": "title",
           "audience": "audience", "priority": "priority", "guardians": "guardians",
           "notices": "notices", "kept_cases": "cases kept"},
}


#: each notice type a person sets to instant, digest or off (handlers/fanout.NOTICE_TYPES),
#: as people read it: in /ustawienia, the daily school summary and the console
NOTICE_NAMES = {
    "pl": {"grades": "Oceny", "attendance": "Frekwencja", "remarks": "Uwagi",
           "homework": "Zadania i sprawdziany", "messages": "Wiadomości ze szkoły",
           "topics": "Tematy lekcji",
           "lists": "Listy lektur z biblioteki"},
    "en": {"grades": "Grades", "attendance": "Attendance", "remarks": "Remarks",
           "homework": "Homework and tests", "messages": "Messages from school",
           "topics": "Lesson topics",
           "lists": "Reading lists from the library"},
}


#: the other notices a mail's one-click unsubscribe turns off (handlers/fanout.OPT_OUT_KINDS)
OPT_OUT_NAMES = {
    "pl": {"announcements": "Ogłoszenia", "digest": "Podsumowanie dnia",
           "library": "Przypomnienia z biblioteki", "alerts": "Powiadomienia dla administratorów"},
    "en": {"announcements": "Announcements", "digest": "Daily summary",
           "library": "Library reminders", "alerts": "Notices for administrators"},
}


def notice_name(kind: str, lang: str) -> str:
    lang = language(lang)
    return (NOTICE_NAMES[lang].get(kind) or OPT_OUT_NAMES[lang].get(kind)
            or ("Inne" if lang == "pl" else "Other"))


def label(code: object, lang: str) -> str:
    """A stored code in words; a reminder level `<level>@<date>` reads by its level."""
    text = str(code or "")
    key = text.split("@", 1)[0]
    return LABELS[language(lang)].get(key, text)


_SIZE_UNITS = ((1024 ** 3, "GB"), (1024 ** 2, "MB"), (1024, "KB"))


def file_size(size: int, lang: str) -> str:
    """"50 MB", "1,5 MB" / "1.5 MB", "10 GB": a size as people read it (binary units under
    the names everyone uses, as a file manager shows them)."""
    for unit, name in _SIZE_UNITS:
        if size >= unit:
            return f"{format_decimal(size / unit, '#,##0.#', locale=language(lang))} {name}"
    return f"{size} B"


def refusal(refused: object, lang: str) -> str:
    """Why a file was not stored (handlers/quota.Refused), in words with the limit met."""
    reason, limit = getattr(refused, "reason", "file_size"), int(getattr(refused, "limit", 0))
    if language(lang) == "pl":
        return {
            "file_size": f"plik jest większy niż {file_size(limit, lang)}",
            "store_full": "w urzędzie skończyło się miejsce na załączniki (urząd już o tym wie)",
            "case_files": f"sprawa ma już {limit} "
                          f"{plural(limit, lang, 'załącznik', 'załączniki', 'załączników')}"
                          " — tyle przyjmujemy w jednej sprawie",
            "case_bytes": f"załączniki sprawy przekroczyłyby {file_size(limit, lang)}"
                          " — tyle przyjmujemy w jednej sprawie",
            "not_fetched": "nie udało się go pobrać — prosimy wysłać go jeszcze raz",
        }.get(reason, "nie udało się go pobrać")
    return {
        "file_size": f"the file is larger than {file_size(limit, lang)}",
        "store_full": "the office's storage for attachments is full (the office has been told)",
        "case_files": f"the case already has {limit} "
                      f"{plural(limit, lang, 'attachment', 'attachments')}, the most one case "
                      "takes",
        "case_bytes": f"the case's attachments would exceed {file_size(limit, lang)}, the most "
                      "one case takes",
        "not_fetched": "it could not be fetched — please send it again",
    }.get(reason, "it could not be fetched")


#: a verified signature's result as people read it (handlers/signatures.py's status and
#: detail codes); "valid" says "qualified" only where the certificate declares it
_SIGNATURE_RESULTS = {
    "pl": {"valid": "podpis ważny", "qualified": "podpis ważny (kwalifikowany)",
           "changed": "podpis nieważny: dokument zmieniono po podpisaniu",
           "signature": "podpis nieważny: nie pasuje do certyfikatu podpisującego",
           "untrusted": "podpis ważny, ale niezaufany (certyfikat nie pochodzi od zaufanego "
                        "wystawcy)",
           "expired": "podpis ważny, ale niezaufany (certyfikat podpisującego wygasł)",
           "partial": "podpis nieważny: obejmuje tylko część dokumentu",
           "malformed": "nie udało się sprawdzić podpisu: plik jest uszkodzony albo w "
                        "nieznanym formacie",
           "missing": "nie udało się sprawdzić podpisu: w sprawie brak pliku, którego dotyczy",
           "timeout": "nie udało się sprawdzić podpisu: sprawdzanie trwało zbyt długo",
           "signed_by": "Podpisany przez", "on": "dnia", "heading": "Podpis"},
    "en": {"valid": "valid signature", "qualified": "valid signature (qualified)",
           "changed": "invalid signature: the document was changed after signing",
           "signature": "invalid signature: it does not match the signer's certificate",
           "untrusted": "valid signature, but not trusted (the certificate is not from a "
                        "trusted issuer)",
           "expired": "valid signature, but not trusted (the signer's certificate has expired)",
           "partial": "invalid signature: it covers only a part of the document",
           "malformed": "the signature could not be checked: the file is damaged or in an "
                        "unknown format",
           "missing": "the signature could not be checked: the file it covers is not in the "
                      "case",
           "timeout": "the signature could not be checked: checking took too long",
           "signed_by": "Signed by", "on": "on", "heading": "Signature"},
}


def signature_result(status: str, detail: str, qualified: bool, lang: str) -> str:
    """"podpis ważny (kwalifikowany)", "podpis nieważny: dokument zmieniono po podpisaniu"."""
    words = _SIGNATURE_RESULTS[language(lang)]
    if status == "valid":
        return words["qualified" if qualified else "valid"]
    if status == "untrusted":
        return words["expired" if detail == "expired" else "untrusted"]
    if status == "invalid":
        return words[detail if detail in ("signature", "partial") else "changed"]
    return words.get(detail if detail in ("missing", "timeout") else "malformed", "")


def signature_line(signature: object, lang: str, zone: ZoneInfo, html: bool = False) -> str:
    """"Podpisany przez Jan Kowalski dnia 3 grudnia 2026, 14:05 — podpis ważny
    (kwalifikowany)" / "Signed by Jan Kowalski on 3 December 2026, 14:05 — valid
    signature (qualified)": one stored verdict (store.models.DocumentSignature).

    The signer's name is the signer's own text: made printable again here (a row stored
    before that rule existed), and with `html` escaped and isolated in `<bdi>`, so that
    the direction of its script cannot carry the verdict beside it along (Unicode UAX #9;
    the HTML standard's bdi element)."""
    words = _SIGNATURE_RESULTS[language(lang)]
    signer = printable(str(getattr(signature, "signer", "") or ""))
    signed_at = getattr(signature, "signed_at", None)
    when = format_datetime(signed_at.astimezone(zone), "d MMMM y, HH:mm",
                           locale=language(lang)) if signed_at is not None else ""
    result = signature_result(str(getattr(signature, "status", "")),
                              str(getattr(signature, "detail", "")),
                              bool(getattr(signature, "qualified", False)), lang)
    if html:
        line = Markup("{} <bdi>{}</bdi>").format(words["signed_by"], signer) if signer \
            else escape(words["heading"])
        if when:
            line += Markup(" {} {}").format(words["on"], when)
        return Markup("{} — {}").format(line, result)
    head = f"{words['signed_by']} {signer}" if signer else words["heading"]
    if when:
        head += f" {words['on']} {when}"
    return f"{head} — {result}"
