"""The residents' case page, `/sprawy/UM-YYYY-NNNNNN` (issue #13, first part).

The link in our mail carries the access code once: the page checks it (limited per
client and per case, like the API), keeps a signed, path-scoped, `HttpOnly`,
`SameSite=Lax` cookie for an hour and redirects to the bare address, so the code leaves
the address bar (and the browser history and any Referer). Without the cookie the page
asks for the code. With it, the resident reads the status and the public history, in
Polish or English (`?lang=en`), and adds a message and an attachment (CSRF token tied to
the cookie; POST → 303 → GET). Server-rendered, no script.
"""

from __future__ import annotations

import hashlib
import hmac
import math

from aiohttp import web
from aiohttp.typedefs import Handler
from itsdangerous import BadSignature, TimestampSigner

from gateway.api import PAGE_HEADERS, case_by_code
from gateway.client import client_address, limit_key
from gateway.errors import ApiError
from gateway.keys import SERVICES, SETTINGS
from gateway.validate import MalformedForm, read_form
from handlers import cases, i18n
from handlers.message import Attachment, InboundMessage
from handlers.signature_check import signatures_by_file
from store.models import Attachment as StoredFile
from store.models import Case, DocumentSignature

routes = web.RouteTableDef()
SESSION_SECONDS = 3600
MESSAGE_MAX = 20_000


def _signer(request: web.Request) -> TimestampSigner:
    return TimestampSigner(request.app[SERVICES].signing_secret, salt="case-page")


def _cookie_name(number: str) -> str:
    return "sprawa-" + number.replace("-", "")


def _session(request: web.Request, number: str) -> str | None:
    value = request.cookies.get(_cookie_name(number), "")
    try:
        signed_number = _signer(request).unsign(value, max_age=SESSION_SECONDS).decode()
    except BadSignature:
        return None
    return value if signed_number == number else None


def _csrf(request: web.Request, session: str) -> str:
    key = request.app[SERVICES].signing_secret.encode()
    return hmac.new(key, f"csrf:{session}".encode(), hashlib.sha256).hexdigest()[:32]


def _lang(request: web.Request) -> str:
    return i18n.language(request.query.get("lang") or "pl")


def _page(request: web.Request, status: int = 200, **context: object) -> web.Response:
    lang = _lang(request)
    text = request.app[SERVICES].renderer.page("case.html", lang, {"lang": lang, **context})
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8",
                        headers=PAGE_HEADERS)


class PageError(Exception):
    def __init__(self, status: int, notice: str) -> None:
        super().__init__(notice)
        self.status, self.notice = status, notice


def _number(request: web.Request) -> str:
    number = cases.find_number(request.match_info["number"][:32])
    if number is None:
        raise PageError(404, "missing")
    return number


@web.middleware
async def page_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page's refusals are pages too (HTML in the person's language), not JSON."""
    try:
        return await handler(request)
    except PageError as error:
        return _page(request, status=error.status, number="", notice=error.notice)
    except MalformedForm:
        return _page(request, status=400, number="", notice="expired")


async def _signed_files(number: str) -> list[tuple[str, list[DocumentSignature]]]:
    """The case's signed files, by name, and what their verification found (#20)."""
    signed = await signatures_by_file(number)
    files = await StoredFile.filter(case_id=number, id__in=list(signed)).order_by("id").values_list(
        "id", "filename") if signed else []
    return [(str(name), signed[file_id]) for file_id, name in files]


@routes.get("/sprawy/{number}")
async def case_page(request: web.Request) -> web.Response:
    number = _number(request)
    code = request.query.get("code")
    if code:
        try:
            await case_by_code(request, number, code)
        except ApiError as error:
            return _page(request, status=error.status, number=number, ask=True,
                         wrong=error.status == 404, limited=error.status == 429)
        signed = _signer(request).sign(number).decode()
        suffix = "?lang=en" if _lang(request) == "en" else ""
        response = web.HTTPSeeOther(f"/sprawy/{number}{suffix}")
        response.set_cookie(_cookie_name(number), signed, max_age=SESSION_SECONDS,
                            path=f"/sprawy/{number}", httponly=True, samesite="Lax",
                            secure=request.app[SETTINGS].base_url.startswith("https://"))
        raise response
    session = _session(request, number)
    if session is None:
        return _page(request, number=number, ask=True)
    case = await Case.get_or_none(number=number)
    if case is None:
        raise PageError(404, "missing")
    return _page(request, number=number, case=case, history=await cases.public_history(case),
                 csrf=_csrf(request, session), added=request.query.get("dodano") == "1",
                 signed_files=await _signed_files(number))


@routes.post("/sprawy/{number}/kod")
async def case_code(request: web.Request) -> web.Response:
    number = _number(request)
    form = await read_form(request)
    code = str(form.get("code", ""))[:64]
    suffix = "&lang=en" if _lang(request) == "en" else ""
    raise web.HTTPSeeOther(f"/sprawy/{number}?code={code}{suffix}")


@routes.post("/sprawy/{number}/wiadomosc")
async def case_message(request: web.Request) -> web.Response:
    number = _number(request)
    session = _session(request, number)
    if session is None:
        raise web.HTTPSeeOther(f"/sprawy/{number}")
    services = request.app[SERVICES]
    wait = services.limits.page_posts_per_client.take(limit_key(client_address(request)))
    if wait:  # before the body is read: a refused post costs us nothing to speak of
        response = _page(request, status=429, number=number, notice="busy",
                         minutes=math.ceil(wait / 60))
        response.headers["Retry-After"] = str(max(1, int(wait)))
        return response
    form = await read_form(request)
    if not hmac.compare_digest(str(form.get("csrf", "")), _csrf(request, session)):
        raise PageError(403, "expired")
    text = str(form.get("message", "")).strip()[:MESSAGE_MAX]
    upload = form.get("attachment")
    attachments = []
    if isinstance(upload, web.FileField) and upload.filename:
        data = upload.file.read(services.attachment_max_size + 1)
        attachments.append(Attachment(filename=str(upload.filename)[:255],
                                      content_type=str(upload.content_type)[:127],
                                      data=data))
    case = await Case.get_or_none(number=number)
    if case is None:
        raise PageError(404, "missing")
    if text or attachments:
        # the page is no channel a notice can take: the holder of the access code adds
        # to the case, and its contacts stay as they are
        msg = InboundMessage(channel="web", address="", text=text, attachments=attachments)
        refused = await cases.add_message(case, msg, services)
        if refused:  # the text is in the case; the files are named, with why (413)
            return _page(request, status=413, number=number, case=case, refused=refused,
                         added=bool(text), history=await cases.public_history(case),
                         csrf=_csrf(request, session))
    suffix = "&lang=en" if _lang(request) == "en" else ""
    raise web.HTTPSeeOther(f"/sprawy/{number}?dodano=1{suffix}")


def setup(app: web.Application) -> None:
    app.middlewares.append(page_errors)
    app.router.add_routes(routes)
