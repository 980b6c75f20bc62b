"""The console's queue of mail not understood, `/panel/nieodczytane` (issue #18, fault 1).

Accepted mail that could not become a case waits here for the case staff (the same
people as the case queue): when it came, from whom, its subject as far as it could be
read, its size and why; the original to download; and two actions, each audited — open a
case from it (the clerk types its subject and text) or mark it handled. The rules are in
handlers/unread.py; this module reads HTTP and uses the console's helpers (sessions, CSRF,
refusal pages) from gateway/panel.py.
"""

from __future__ import annotations

from aiohttp import web

from gateway.downloads import file_response
from gateway.keys import DISPATCHER
from gateway.panel import STAFF, TEXT_MAX, Refusal, _actor, _form, _need, _page, _services, row_id
from handlers import audit, unread

routes = web.RouteTableDef()  # relative to the console's prefix, /panel (gateway/console.py)
SECTION = "unread"


async def _found(request: web.Request) -> dict:
    _need(request, SECTION)
    wanted = row_id(request)
    found = await unread.one(wanted) if wanted else None
    if found is None:
        raise Refusal(404, "not_found")
    return found


@routes.get("/nieodczytane")
async def unread_queue(request: web.Request) -> web.Response:
    _need(request, SECTION)
    mails = await unread.waiting()
    return _page(request, "unread", mails=mails, total=await unread.count_waiting(),
                 done=request.query.get("zrobione", ""))


@routes.get("/nieodczytane/{id}")
async def unread_mail(request: web.Request) -> web.Response:
    return _page(request, "unread_mail", mail=await _found(request))


@routes.get("/nieodczytane/{id}/oryginal")
async def unread_original(request: web.Request) -> web.Response:
    """The mail as it arrived, as a download: never shown inline (it is whatever a stranger
    sent), never kept by a cache on the way (it holds personal data)."""
    found = await _found(request)
    raw = await unread.original(found["id"])
    if raw is None:
        raise Refusal(404, "not_found")
    extension, content_type = unread.raw_file(_services(request), found["channel"])
    return file_response(raw, f"wiadomosc-{found['id']}.{extension}",
                         content_type=content_type)


@routes.post("/nieodczytane/{id}/sprawa")
async def unread_open_case(request: web.Request) -> web.Response:
    found = await _found(request)
    form = await _form(request)
    subject = " ".join(str(form.get("temat", "")).split())[:300]
    text = str(form.get("tresc", "")).strip()[:TEXT_MAX]
    if not subject or not text:
        raise Refusal(400, "empty")
    try:
        case = await unread.open_case(_services(request), found["id"], subject=subject,
                                      text=text, clerk=request[STAFF][1], actor=_actor(request))
    except audit.Refused:
        raise Refusal(403, "forbidden") from None
    if case is None:
        raise Refusal(409, "conflict")  # another clerk (or tab) was first
    request.config_dict[DISPATCHER].notify()
    raise web.HTTPSeeOther(f"/panel/sprawy/{case.number}")


@routes.post("/nieodczytane/{id}/zalatwione")
async def unread_handled(request: web.Request) -> web.Response:
    found = await _found(request)
    await _form(request)
    try:
        handled = await unread.mark_handled(_services(request), found["id"],
                                            clerk=request[STAFF][1], actor=_actor(request))
    except audit.Refused:
        raise Refusal(403, "forbidden") from None
    if not handled:
        raise Refusal(409, "conflict")
    raise web.HTTPSeeOther("/panel/nieodczytane?zrobione=1")
