"""Issue #20 in a real browser: the signature lines, the qualified badge and the KPA
notice keep the console's case pages and the residents' page axe-clean, in Polish and
English, and the residents' page still fits a 375-pixel phone. Skipped like the other
browser tests without Chromium, and on the PostgreSQL pass."""

from __future__ import annotations

import re

from handlers import signature_check
from store.models import Case
from tests.conftest import Gateway
from tests.panel import staff_member
from tests.test_browser import (  # noqa: F401 - `browser` is a fixture
    base,
    browser,
    new_page,
    no_serious_violations,
    pytestmark,
    sign_in_in_browser,
)
from tests.test_signatures import (  # noqa: F401 - `pki` and `documents` are fixtures
    Documents,
    Pki,
    documents,
    in_process,
    pki,
    signed_mail,
)


async def test_signed_documents_on_the_pages_pass_axe(gw: Gateway, browser, pki: Pki,  # noqa: F811
                                                      documents: Documents  # noqa: F811
                                                      ) -> None:  # type: ignore[no-untyped-def]
    await staff_member(gw, "urzedniczka@milanowek.example")
    [confirmation] = await gw.mail(signed_mail(documents))
    number = (await Case.get(subject="Wniosek o zaświadczenie")).number
    await signature_check.drain(in_process(pki), gw.clock.now())
    text = confirmation.get_body(("plain",)).get_content()
    link = re.search(r"https?://\S+(/sprawy/UM-\d{4}-\d{6}\?code=\S+)", text).group(1)
    resident = await new_page(browser, viewport={"width": 375, "height": 740})
    await resident.goto(base(gw) + link)
    assert await resident.is_visible("text=podpis ważny (kwalifikowany)")
    await no_serious_violations(resident, "sprawa-mieszkanca-podpisy")
    assert await resident.evaluate("() => document.documentElement.scrollWidth") <= 375
    await resident.goto(base(gw) + f"/sprawy/{number}?lang=en")
    await no_serious_violations(resident, "sprawa-mieszkanca-podpisy-en")
    clerk = await new_page(browser)
    await sign_in_in_browser(gw, clerk, "urzedniczka@milanowek.example")
    for path in (f"/panel/sprawy/{number}", "/panel/sprawy"):
        for lang in ("pl", "en"):
            await clerk.goto(base(gw) + f"{path}?lang={lang}")
            await no_serious_violations(clerk, f"podpisy{path.replace('/', '-')}-{lang}")
    await clerk.goto(base(gw) + f"/panel/sprawy/{number}?lang=pl")
    assert await clerk.is_visible("text=ważny podpis kwalifikowany")
