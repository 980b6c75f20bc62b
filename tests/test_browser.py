"""Issue #13 in a real browser: Debian's Chromium driven by Playwright, against the real
gateway on a loopback port. The flows people will use every day — by mouse and by
keyboard alone — and an axe-core scan of every page (no serious or critical findings).

They run in the SQLite pass of `make test` (once per CI run, like the fuzzing); they
are skipped, saying why, when no Chromium is installed (`.ci/run` installs Debian's).
With `EMIL_SCREENSHOTS=docs/screenshots` they also save the README's screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.models import AuditEntry, Case, CaseEvent
from tests.conftest import PG_URL, Gateway, make_mail
from tests.panel import mailed_link, staff_member

CHROMIUM = os.environ.get("EMIL_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
SHOTS = os.environ.get("EMIL_SCREENSHOTS")

pytestmark = [
    pytest.mark.skipif(not CHROMIUM, reason="no Chromium (apt-get install chromium)"),
    pytest.mark.skipif(bool(PG_URL), reason="browser tests run once, in the SQLite pass"),
    pytest.mark.timeout(240),
]


@pytest.fixture
async def browser() -> AsyncIterator:  # type: ignore[type-arg]
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM,
                                           args=["--no-sandbox", "--disable-gpu"])
        yield launched
        await launched.close()


async def new_page(browser, **options):  # type: ignore[no-untyped-def]
    # axe is injected with page.evaluate; our pages forbid every script by CSP
    context = await browser.new_context(bypass_csp=True, locale="pl-PL", **options)
    return await context.new_page()


def base(gw: Gateway) -> str:
    return str(gw.client.make_url("")).rstrip("/")


async def no_serious_violations(page, name: str) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {serious}"
    if SHOTS and not name.endswith("-en"):
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def sign_in_in_browser(gw: Gateway, page, email: str,  # type: ignore[no-untyped-def]
                             keyboard: bool = False) -> None:
    await page.goto(base(gw) + "/panel/sprawy")
    assert "/panel/wejscie" in page.url  # sent to sign in first
    await no_serious_violations(page, "logowanie")
    if keyboard:
        await tab_to(page, "#email")
        await page.keyboard.type(email)
        await page.keyboard.press("Enter")
    else:
        await page.fill("#email", email)
        await page.click("button[type=submit]")
    await page.wait_for_selector("text=wysłaliśmy")
    await gw.drain()
    await page.goto(base(gw) + mailed_link(gw, email))
    if keyboard:
        await tab_to(page, "main button[type=submit]")
        await page.keyboard.press("Enter")
    else:
        await page.click("main button[type=submit]")
    await page.wait_for_url(re.compile(r".*/panel/(sprawy|ogloszenia|biblioteka|ludzie).*"))


async def tab_to(page, selector: str, limit: int = 60) -> None:  # type: ignore[no-untyped-def]
    """Press Tab until `selector` has the focus, as a keyboard user would, and check the
    focus is visible there."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)",
                               selector):
            outline = await page.evaluate(
                "() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), f"no visible focus on {selector}"
            return
    raise AssertionError(f"{selector} cannot be reached with Tab")


async def a_resident_case(gw: Gateway) -> str:
    await gw.mail(make_mail("Dziura w drodze", "Przy ulicy Kościuszki 12 jest głęboka dziura.",
                            sender="Jan Kowalski <jan@example.pl>"))
    return (await Case.get(subject="Dziura w drodze")).number


@pytest.mark.parametrize("keyboard", [False, True], ids=["mouse", "keyboard"])
async def test_clerk_finds_replies_changes_status_and_the_audit_shows_it(
        gw: Gateway, browser, keyboard: bool) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw, "admin@milanowek.example", ["admin", "staff"], ["urzad"],
                       name="Krystyna Urzędniczka")
    number = await a_resident_case(gw)
    page = await new_page(browser)
    await sign_in_in_browser(gw, page, "admin@milanowek.example", keyboard)
    await no_serious_violations(page, "sprawy")
    # a word from the correspondence, typed without diacritics
    if keyboard:
        await tab_to(page, "#szukaj")
        await page.keyboard.type("kosciuszki")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r".*szukaj=kosciuszki.*"))
        await tab_to(page, f"a[href='/panel/sprawy/{number}']")
        await page.keyboard.press("Enter")
    else:
        await page.fill("#szukaj", "kosciuszki")
        await page.click("form[role=search] button")
        await page.click(f"text={number}")
    await page.wait_for_url(f"**/panel/sprawy/{number}")
    await no_serious_violations(page, "sprawa")
    if keyboard:
        await tab_to(page, "#odpowiedz")
        await page.keyboard.type("Naprawimy w piątek.")
        await tab_to(page, "#odpowiedz ~ p button, form[action$='/odpowiedz'] button")
        await page.keyboard.press("Enter")
    else:
        await page.fill("#odpowiedz", "Naprawimy w piątek.")
        await page.click("form[action$='/odpowiedz'] button")
    await page.wait_for_selector("text=Odpowiedź wysłana")
    await gw.drain()
    [reply] = [m for m in gw.sent_mail() if "Naprawimy" in m.get_body(("plain",)).get_content()]
    assert reply["To"] == "jan@example.pl"
    if keyboard:
        await tab_to(page, "#nowy-status")
        await page.keyboard.press("End")  # the last status
        await tab_to(page, "form[action$='/status'] button")
        await page.keyboard.press("Enter")
    else:
        await page.select_option("#nowy-status", "resolved")
        await page.click("form[action$='/status'] button")
    await page.wait_for_selector("text=Status zmieniony")
    status = (await Case.get(number=number)).status
    assert status == ("rejected" if keyboard else "resolved")
    await page.goto(base(gw) + f"/panel/audyt?obiekt={number}")
    await no_serious_violations(page, "dziennik")
    text = await page.inner_text("main")
    assert "zmiana statusu sprawy" in text and "odpowiedź w sprawie" in text
    assert await AuditEntry.filter(object=number, source="console").count() == 2


async def test_compose_count_then_page_counts_up(gw: Gateway, browser
                                                 ) -> None:  # type: ignore[no-untyped-def]
    from gateway.jobs import run_job

    await staff_member(gw, "sekretariat@milanowek.example", ["staff"], ["szkola-2"],
                       name="Sekretariat")
    for n in range(5):
        await gw.linked(7000 + n, f"Nauczyciel {n}", ["staff"], units=["szkola-2"])
    page = await new_page(browser)
    await sign_in_in_browser(gw, page, "sekretariat@milanowek.example")
    await page.goto(base(gw) + "/panel/ogloszenia")
    await no_serious_violations(page, "ogloszenia")
    await page.fill("#tytul", "Rada pedagogiczna")
    await page.fill("#tresc", "W czwartek o **15**.")
    await page.check("input[name='unit:szkola-2']")
    await page.click("form[action$='/podglad'] button")
    await page.wait_for_selector("text=Trafi do 6 osób")
    await no_serious_violations(page, "ogloszenie-podglad")
    await page.click("text=Wyślij do 6 osób")
    await page.wait_for_url(re.compile(r".*/panel/ogloszenia/\d+$"))
    await run_job(gw.services, "scheduled-announcements")
    await page.reload()
    queued = int(await page.inner_text("#licznik-kolejka"))
    assert queued > 0 and await page.inner_text("#licznik-wyslane") == "0"
    await gw.drain()
    await page.reload()
    assert int(await page.inner_text("#licznik-wyslane")) == 6
    await no_serious_violations(page, "ogloszenie")


async def test_resident_adds_a_message_and_the_clerk_sees_it(gw: Gateway, browser
                                                             ) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw, "urzedniczka@milanowek.example")
    [confirmation] = await gw.mail(make_mail("Wycinka drzewa", "Proszę o zgodę.",
                                             sender="Ewa <ewa@example.org>"))
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    number = re.search(r"UM-\d{4}-\d{6}", link).group(0)
    resident = await new_page(browser, viewport={"width": 375, "height": 740})
    await resident.goto(base(gw) + link)
    assert "code=" not in resident.url  # the page drops the code from the address bar
    await no_serious_violations(resident, "sprawa-mieszkanca")
    width = await resident.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375  # usable on a 375-pixel phone: nothing scrolls sideways
    await resident.fill("#message", "Dosyłam zdjęcie drzewa.")
    await resident.set_input_files("#attachment", files=[{
        "name": "drzewo.jpg", "mimeType": "image/jpeg", "buffer": b"\xff\xd8jpeg"}])
    await resident.click("main button[type=submit]")
    await resident.wait_for_selector("text=Dołączyliśmy")
    clerk = await new_page(browser)
    await sign_in_in_browser(gw, clerk, "urzedniczka@milanowek.example")
    await clerk.goto(base(gw) + f"/panel/sprawy/{number}")
    thread = await clerk.inner_text(".thread")
    assert "Dosyłam zdjęcie drzewa." in thread
    assert await clerk.is_visible("text=drzewo.jpg")
    assert await CaseEvent.filter(case_id=number, channel="web").count() == 1


async def test_every_console_page_passes_axe_in_both_languages_and_at_200_percent(
        gw: Gateway, browser) -> None:  # type: ignore[no-untyped-def]
    from store.models import JobRun

    admin = await staff_member(gw, "admin@milanowek.example", ["admin", "staff", "librarian"],
                               ["urzad"], name="Administratorka")
    number = await a_resident_case(gw)
    for subject, body, sender in (
            ("Oświetlenie na ul. Królewskiej", "Od tygodnia nie świeci latarnia.", "ola@example.pl"),
            ("Wywóz śmieci — Literacka", "Pojemnik nie został opróżniony.", "piotr@example.pl"),
            ("Zaświadczenie o zameldowaniu", "Proszę o zaświadczenie.", "maria@example.pl")):
        await gw.mail(make_mail(subject, body, sender=sender))
    await JobRun.create(job="overdue-reminders", due="2026-11-25", started_at=gw.clock.now(),
                        finished_at=gw.clock.now(), summary={"messages": 1, "unreachable": [
                            {"card": "K-1", "name": "Zofia", "level": "overdue-7@x",
                             "titles": ["Lalka"]}]})
    page = await new_page(browser)
    await sign_in_in_browser(gw, page, "admin@milanowek.example")
    pages = {"sprawy": "/panel/sprawy", "sprawa": f"/panel/sprawy/{number}",
             "ogloszenia": "/panel/ogloszenia", "biblioteka": "/panel/biblioteka",
             "ludzie": "/panel/ludzie?szukaj=Adm", "osoba": f"/panel/ludzie/{admin}",
             "dziennik": "/panel/audyt", "zdrowie": "/panel/zdrowie"}
    for name, path in pages.items():
        for lang in ("pl", "en"):
            await page.goto(base(gw) + path + ("&" if "?" in path else "?") + f"lang={lang}")
            assert await page.get_attribute("html", "lang") == lang
            await no_serious_violations(page, name if lang == "pl" else f"{name}-en")
    await page.goto(base(gw) + f"/panel/ludzie/{admin}?lang=pl")
    await page.click("form[action$='/kod'] button")
    await page.wait_for_selector(".qr svg")
    await no_serious_violations(page, "list-z-kodem")
    # 200 % zoom: the case page still fits a 1280-pixel window without sideways scrolling
    zoomed = await new_page(browser, viewport={"width": 640, "height": 400},
                            device_scale_factor=2)
    await sign_in_in_browser(gw, zoomed, "admin@milanowek.example")
    await zoomed.goto(base(gw) + f"/panel/sprawy/{number}")
    assert await zoomed.evaluate("() => document.documentElement.scrollWidth") <= 640
    # and on a 375-pixel phone: the page does not scroll sideways (wide tables scroll
    # inside their own box)
    phone = await new_page(browser, viewport={"width": 375, "height": 740})
    await sign_in_in_browser(gw, phone, "admin@milanowek.example")
    for path in ("/panel/sprawy", f"/panel/sprawy/{number}", "/panel/ogloszenia",
                 "/panel/audyt"):
        await phone.goto(base(gw) + path)
        assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 375, path


async def test_compose_and_the_residents_page_by_keyboard_alone(gw: Gateway, browser
                                                                ) -> None:  # type: ignore[no-untyped-def]
    """The other two flows with no mouse: Tab to each control (focus visible), type,
    Space for a checkbox, Enter to send."""
    await staff_member(gw, "sekretariat@milanowek.example", ["staff"], ["szkola-2"],
                       name="Sekretariat")
    await gw.linked(7100, "Nauczyciel", ["staff"], units=["szkola-2"])
    page = await new_page(browser)
    await sign_in_in_browser(gw, page, "sekretariat@milanowek.example", keyboard=True)
    await page.goto(base(gw) + "/panel/ogloszenia")
    await tab_to(page, "#tytul")
    await page.keyboard.type("Zebranie")
    await tab_to(page, "#tresc")
    await page.keyboard.type("Jutro o 15.")
    await tab_to(page, "input[name='unit:szkola-2']")
    await page.keyboard.press("Space")
    await tab_to(page, "form[action$='/podglad'] button")
    await page.keyboard.press("Enter")
    await page.wait_for_selector("text=Trafi do 2 osób")
    await tab_to(page, "form[action='/panel/ogloszenia'] button")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r".*/panel/ogloszenia/\d+$"))

    [confirmation] = await gw.mail(make_mail("Wycinka drzewa", "Proszę o zgodę.",
                                             sender="Ewa <ewa@example.org>"))
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    number = re.search(r"UM-\d{4}-\d{6}", link).group(0)
    resident = await new_page(browser)
    await resident.goto(base(gw) + link)
    await tab_to(resident, "#message")
    await resident.keyboard.type("Dzwoniłam w tej sprawie.")
    await tab_to(resident, "main button[type=submit]")
    await resident.keyboard.press("Enter")
    await resident.wait_for_selector("text=Dołączyliśmy")
    assert await CaseEvent.filter(case_id=number, channel="web",
                                  text="Dzwoniłam w tej sprawie.").exists()
