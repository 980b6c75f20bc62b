"""Issue #13: the staff console over HTTP — passwordless sign-in, sessions, the case
queue with full-text search, a reply reaching the resident, the audit trail, and CSRF
and role checks over every form and page, by table."""

from __future__ import annotations

import pytest

from store.models import AuditEntry, Case, CaseEvent, Person, SignInLink, StaffSession
from tests.conftest import Gateway, make_mail
from tests.panel import LINK, csrf_of, mailed_link, sign_in, staff_member


async def a_case(gw: Gateway, subject: str = "Dziura w drodze",
                 body: str = "Przy ulicy Kościuszki 12 jest głęboka dziura.",
                 sender: str = "Jan Kowalski <jan@example.pl>") -> str:
    await gw.mail(make_mail(subject, body, sender=sender))
    return (await Case.filter(subject=subject).order_by("-number").first()).number


async def test_sign_in_by_mailed_link_then_reply_status_and_audit(gw: Gateway) -> None:
    await staff_member(gw)
    number = await a_case(gw)
    resp = await gw.client.get("/panel/sprawy", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/panel/wejscie")
    await sign_in(gw, "urzedniczka@milanowek.example")
    cookie = [c for c in gw.client.session.cookie_jar if c.key == "panel-sesja"][0]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/panel"
    # a word from the correspondence, without its diacritics, finds the case
    html = await (await gw.client.get("/panel/sprawy", params={"szukaj": "kosciuszki"})).text()
    assert number in html
    html = await (await gw.client.get("/panel/sprawy", params={"szukaj": "wodociąg"})).text()
    assert number not in html
    page = await (await gw.client.get(f"/panel/sprawy/{number}")).text()
    assert "głęboka dziura" in page
    resp = await gw.client.post(f"/panel/sprawy/{number}/odpowiedz", allow_redirects=False,
                                data={"csrf": csrf_of(page), "tekst": "Naprawimy w piątek."})
    assert resp.status == 303
    await gw.drain()
    [reply] = [m for m in gw.sent_mail() if "Naprawimy" in m.get_body(("plain",)).get_content()]
    assert reply["To"] == "jan@example.pl" and number in reply["Subject"]
    assert reply["In-Reply-To"]  # threaded to the resident's mail
    resp = await gw.client.post(f"/panel/sprawy/{number}/status", allow_redirects=False,
                                data={"csrf": csrf_of(page), "status": "resolved", "tekst": ""})
    assert resp.status == 303 and (await Case.get(number=number)).status == "resolved"
    # the reply is searchable too
    html = await (await gw.client.get("/panel/sprawy", params={"szukaj": "piatek"})).text()
    assert number in html
    actions = await AuditEntry.filter(object=number).values_list("action", "source", "actor")
    assert [a[:2] for a in actions] == [("case.reply", "console"), ("case.status", "console")]
    assert all("Krystyna Urzędniczka" in a[2] for a in actions)


async def test_a_sign_in_link_works_once_only_in_its_browser_and_only_for_ten_minutes(
        gw: Gateway, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw)
    html = await (await gw.client.get("/panel/wejscie")).text()
    await gw.client.post("/panel/wejscie", data={"email": "urzedniczka@milanowek.example",
                                                 "csrf": csrf_of(html)})
    await gw.drain()
    link = mailed_link(gw, "urzedniczka@milanowek.example")
    other = await aiohttp_client(gw.client.server)
    other_html = await (await other.get(link)).text()  # another browser: no cookie of ours
    resp = await other.post(link, data={"csrf": csrf_of(other_html)}, allow_redirects=False)
    assert resp.status == 403
    page = await (await gw.client.get(link)).text()
    resp = await gw.client.post(link, data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert resp.status == 303
    resp = await gw.client.post(link, data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert resp.status == 403  # spent
    # a fresh link, eleven minutes later, no longer works
    html = await (await gw.client.get("/panel/wejscie")).text()
    await gw.client.post("/panel/wejscie", data={"email": "urzedniczka@milanowek.example",
                                                 "csrf": csrf_of(html)})
    await gw.drain()
    late = mailed_link(gw, "urzedniczka@milanowek.example")
    assert late != link
    gw.clock.advance(minutes=11)
    page = await (await gw.client.get(late)).text()
    resp = await gw.client.post(late, data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert resp.status == 403
    assert await SignInLink.filter(used_at__isnull=False).count() == 1


async def test_unknown_addresses_get_the_same_answer_and_no_mail(gw: Gateway) -> None:
    await gw.person("Mieszkanka", ["citizen"], email="ala@example.org")
    for email in ("nikt@example.org", "ala@example.org"):
        html = await (await gw.client.get("/panel/wejscie")).text()
        resp = await gw.client.post("/panel/wejscie", data={"email": email,
                                                            "csrf": csrf_of(html)})
        assert resp.status == 200 and "wysłaliśmy" in await resp.text()
    await gw.drain()
    assert gw.sent_mail() == [] and await SignInLink.all().count() == 0


async def test_sessions_end_when_idle_and_everywhere_at_once(gw: Gateway, aiohttp_client
                                                             ) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    second = await sign_in(gw, "urzedniczka@milanowek.example",
                           await aiohttp_client(gw.client.server))
    assert (await second.get("/panel/sprawy", allow_redirects=False)).status == 200
    html = await (await gw.client.get("/panel/sprawy")).text()
    resp = await gw.client.post("/panel/wyloguj-wszedzie", data={"csrf": csrf_of(html)},
                                allow_redirects=False)
    assert resp.status == 303
    assert (await second.get("/panel/sprawy", allow_redirects=False)).status == 303
    third = await sign_in(gw, "urzedniczka@milanowek.example",
                          await aiohttp_client(gw.client.server))
    gw.clock.advance(minutes=gw.settings.panel_idle_minutes + 1)
    assert (await third.get("/panel/sprawy", allow_redirects=False)).status == 303
    assert await StaffSession.filter(ended_at__isnull=True).count() == 0


# --- CSRF and roles, by table ---------------------------------------------------------------

STAFF = {"clerk", "admin", "other_staff"}
PAGES = {  # page: who may see it
    "/panel/sprawy": {"clerk", "admin"},
    "/panel/sprawy/{number}": {"clerk", "admin"},
    "/panel/audyt": {"admin"},
    "/panel/ogloszenia": STAFF,
    "/panel/biblioteka": {"librarian", "admin"},
    "/panel/ludzie?szukaj=a": {"admin"},
    "/panel/ludzie/{person}": {"admin"},
    "/panel/zdrowie": {"admin"},
}
FORMS = {  # form: (who may post it, the answer to them with the token)
    "/panel/sprawy/{number}/odpowiedz": ({"clerk", "admin"}, 303),
    "/panel/sprawy/{number}/notatka": ({"clerk", "admin"}, 303),
    "/panel/sprawy/{number}/status": ({"clerk", "admin"}, 303),
    "/panel/sprawy/{number}/przydziel": ({"clerk", "admin"}, 303),
    "/panel/ogloszenia/podglad": (STAFF, 400),  # no title: the form again, with why
    "/panel/ludzie/{person}/kod": ({"admin"}, 200),
    "/panel/ludzie/{person}/eksport": ({"admin"}, 200),
    "/panel/ludzie/{person}/usun": ({"admin"}, 400),  # not confirmed: nothing erased
    "/panel/wyloguj-wszedzie": ({"clerk", "admin", "other_staff", "librarian"}, 303),
    "/panel/wyloguj": ({"clerk", "admin", "other_staff", "librarian"}, 303),
}
WHO = {"clerk": (["staff"], ["urzad"]), "admin": (["admin"], []),
       "other_staff": (["staff"], ["szkola-2"]), "librarian": (["librarian"], [])}


@pytest.mark.parametrize("who", sorted(WHO))
async def test_every_page_and_form_by_role_and_csrf(gw: Gateway, aiohttp_client, who: str
                                                    ) -> None:  # type: ignore[no-untyped-def]
    number = await a_case(gw)
    person = await gw.person("Mieszkanka", ["citizen"], email="mieszkanka@example.org")
    roles, units = WHO[who]
    email = f"{who}@milanowek.example"
    await staff_member(gw, email, roles, units, name=who)
    client = await sign_in(gw, email, await aiohttp_client(gw.client.server))

    def url(path: str) -> str:
        return path.format(number=number, person=person)

    for path, allowed in PAGES.items():
        resp = await client.get(url(path), allow_redirects=False)
        assert resp.status == (200 if who in allowed else 403), (who, path)
    home = await (await client.get("/panel/", allow_redirects=True)).text()
    token = csrf_of(home)
    data = {"tekst": "x", "status": "waiting", "osoba": "", "potwierdzenie": "nie"}
    for path in FORMS:
        resp = await client.post(url(path), data=data, allow_redirects=False)
        assert resp.status == 403, (who, path, "without a token")
        resp = await client.post(url(path), data={**data, "csrf": "0" * 43},
                                 allow_redirects=False)
        assert resp.status == 403, (who, path, "with a wrong token")
    for path, (allowed, answer) in FORMS.items():
        if "wyloguj" in path:
            continue
        resp = await client.post(url(path), data={**data, "csrf": token}, allow_redirects=False)
        assert resp.status == (answer if who in allowed else 403), (who, path, "with the token")
    # nobody signed out sees nothing and changes nothing
    anonymous = await aiohttp_client(gw.client.server)
    for path in PAGES:
        resp = await anonymous.get(url(path), allow_redirects=False)
        assert resp.status == 303
    for path in FORMS:
        resp = await anonymous.post(url(path), data={"tekst": "x"}, allow_redirects=False)
        assert resp.status == 401
    assert await CaseEvent.filter(case_id=number, author_id__isnull=False).count() == (
        2 + 1 if who in ("clerk", "admin") else 0)
    assert await Person.exists(id=person)


async def test_a_form_body_that_cannot_be_read_is_a_400_page(gw: Gateway) -> None:
    """Found by schemathesis: multipart without its boundary was a 500 on every form."""
    number = await a_case(gw)
    for path in ("/panel/wejscie", "/panel/wejscie/abc", f"/sprawy/{number}/kod"):
        resp = await gw.client.post(path, data=b"csrf=&email=",
                                    headers={"Content-Type": "multipart/form-data"})
        assert resp.status == 400, path
        assert resp.content_type == "text/html"


async def test_a_staff_member_with_the_bot_gets_the_link_there(gw: Gateway) -> None:
    await gw.linked(8101, "Tomasz z bota", ["staff"], email="tomasz@milanowek.example",
                    units=["urzad"])
    html = await (await gw.client.get("/panel/wejscie")).text()
    await gw.client.post("/panel/wejscie", data={"email": "tomasz@milanowek.example",
                                                 "csrf": csrf_of(html)})
    await gw.drain()
    [message] = [t for t in gw.botapi.texts_to(8101) if "/panel/wejscie/" in t]
    link = LINK.search(message).group(1)
    page = await (await gw.client.get(link)).text()
    resp = await gw.client.post(link, data={"csrf": csrf_of(page)}, allow_redirects=False)
    assert resp.status == 303
    assert (await gw.client.get("/panel/sprawy", allow_redirects=False)).status == 200
