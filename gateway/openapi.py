"""The OpenAPI 3.1 description of every HTTP endpoint, served at `/api/openapi.json`.

The JSON bodies of the API, asked and answered, are the pydantic models the API validates
with and answers from (gateway/schemas.py): their JSON Schema (2020-12, which OpenAPI 3.1
takes as it is) becomes the document's `components/schemas`, so a limit is written once.
What is not a JSON body — paths, parameters, security, the pages and forms, the hooks —
is written here. `tests/test_openapi.py` checks that every route of the app is described
and every described route exists, and validates the document, and `make fuzz`
(schemathesis) checks the live gateway's answers against it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway import schemas
from gateway.hooks import HOOKS

S = dict[str, Any]
STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
REF = "#/components/schemas/"
ERROR: S = {"$ref": REF + "Error"}


class Components:
    """The document's `components/schemas`, filled from the models it refers to."""

    def __init__(self) -> None:
        self.schemas: S = {}

    def ref(self, model: type[BaseModel]) -> S:
        """A reference to `model`'s schema, which (with the models it nests, pydantic's
        `$defs`) is added to the components."""
        schema = model.model_json_schema(
            ref_template=REF + "{model}", schema_generator=schemas.DocumentSchema,
            mode="validation" if issubclass(model, schemas.Body) else "serialization")
        self.schemas.update(schema.pop("$defs", {}))
        self.schemas[model.__name__] = schema
        return {"$ref": REF + model.__name__}


def _json(schema: S) -> S:
    return {"application/json": {"schema": schema}}


def _errors(*codes: int) -> S:
    words = {400: "invalid input, naming the field", 401: "no valid API key or signature",
             403: "the key lacks the scope", 404: "not found", 409: "conflict",
             413: "the body is too large", 429: "rate limited (see Retry-After)",
             503: "briefly unavailable (see Retry-After)"}
    return {str(c): {"description": words[c], "content": _json(ERROR)} for c in codes}


def _op(summary: str, ok: str, ok_schema: S | None = None, *, errors: tuple[int, ...] = (),
        body: S | None = None, key: str | None = None, params: list[S] | None = None,
        content_type: str = "application/json", security: bool = True) -> S:
    op: S = {"summary": summary, "responses": {
        ok: {"description": "done", **({"content": {content_type: {"schema": ok_schema}}}
                                        if ok_schema is not None else {})},
        **_errors(*errors, 503)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if params:
        op["parameters"] = params
    if key:
        op["description"] = f"Needs an API key with scope `{key}` (`Authorization: Bearer …`)."
        op["security"] = [{"bearer": []}]
    elif security:
        op["security"] = []
    return op


def _page(summary: str, statuses: tuple[int, ...], *, params: list[S],
          form: S | None = None, multipart: bool = False) -> S:
    """An HTML page or form target: pages and errors are HTML, redirects have no body."""
    responses: S = {}
    for status in statuses:
        if status in (301, 302, 303):
            responses[str(status)] = {"description": "see the Location header"}
        else:
            responses[str(status)] = {"description": "a page",
                                      "content": {"text/html": {"schema": STR}}}
    op: S = {"summary": summary, "responses": responses, "parameters": params, "security": []}
    if form is not None:
        kind = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
        op["requestBody"] = {"required": True, "content": {kind: {"schema": form}}}
    return op


def _path(name: str, schema: S | None = None) -> S:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR}


def _obj(required: list[str], **props: S) -> S:
    return {"type": "object", "required": required, "properties": props}


HOOK_HEADERS = [{"name": n, "in": "header", "required": True, "schema": STR}
                for n in ("webhook-id", "webhook-timestamp", "webhook-signature")]
ID = _path("id", INT)


def document(app: web.Application | None = None) -> S:
    models = Components()
    models.ref(schemas.Error)  # ERROR: every error answer
    ref = models.ref
    paths: S = {
        "/healthz": {"get": _op("Health: 200 when the store, listeners and every background "
                                "part are up; else 503 naming what is not. `unread_mail`: "
                                "mail waiting for a clerk; from EMIL_UNREAD_MAIL_ALERT on, "
                                "`status` is `warn` (still 200) and `warnings` names it", "200",
                                _obj(["status"], status={"enum": ["ok", "warn", "degraded"]},
                                     failing={"type": "array"}, unread_mail=INT,
                                     warnings={"type": "array", "items": STR}))},
        "/metrics": {"get": _op("Prometheus metrics", "200", STR, content_type="text/plain")},
        "/api/openapi.json": {"get": _op("This document", "200", {"type": "object"})},
        "/api/v1/cases": {"post": _op(
            "Submit a case. The access code is in the answer for a `cases` key and for an "
            "anonymous case without `email`; otherwise it goes by mail to `email` only. "
            "`Idempotency-Key`: the same key within 24 h returns the same case.", "201",
            ref(schemas.CaseCreated), errors=(400, 413, 429), body=ref(schemas.NewCase),
            params=[{"name": "Idempotency-Key", "in": "header", "required": False,
                     "schema": {"type": "string", "minLength": 1,
                                "maxLength": schemas.MAX_IDEMPOTENCY_KEY}}])},
        "/api/v1/cases/{number}": {"get": _op(
            "A case with its public history, by access code (`?code=`) or a `cases` key",
            "200", ref(schemas.CaseView), errors=(401, 403, 404, 429),
            params=[_path("number"), {"name": "code", "in": "query", "required": False,
                                      "schema": STR}])},
        "/api/v1/cases/{number}/events": {"post": _op(
            "Staff: a status change and/or a note; a public one is told to the requester",
            "201", ref(schemas.CaseEventDone), errors=(400, 401, 403, 404, 413), key="cases",
            params=[_path("number")], body=ref(schemas.CaseEvent))},
        "/api/v1/people": {"post": _op(
            "Register a person", "201", ref(schemas.PersonCreated),
            errors=(400, 401, 403, 409, 413), key="admin", body=ref(schemas.NewPerson))},
        "/api/v1/people/{id}": {"patch": _op(
            "Notification preferences", "200", ref(schemas.PreferencesSaved),
            errors=(400, 401, 403, 404, 413), key="admin", params=[ID],
            body=ref(schemas.Preferences))},
        "/api/v1/people/{id}/link-codes": {"post": _op(
            "A one-time code for `/start CODE`", "201", ref(schemas.LinkCode),
            errors=(401, 403, 404), key="admin", params=[ID])},
        "/api/v1/students": {"post": _op(
            "Create or update a student and their guardians", "201",
            ref(schemas.StudentSaved), errors=(400, 401, 403, 413), key="admin",
            body=ref(schemas.NewStudent))},
        "/api/v1/api-keys": {
            "get": _op("API keys by id, label and scopes (never the key)", "200",
                       ref(schemas.ApiKeys), errors=(401, 403), key="admin"),
            "post": _op("A new key, shown in this answer only", "201",
                        ref(schemas.ApiKeyCreated), errors=(400, 401, 403, 413), key="admin",
                        body=ref(schemas.NewApiKey))},
        "/api/v1/api-keys/{id}": {"delete": _op(
            "Revoke a key (refused from the next request on)", "200",
            ref(schemas.ApiKeyRevoked), errors=(401, 403, 404), key="admin", params=[ID])},
        "/api/v1/library/renewals": {"get": _op(
            "Renewals granted through the gateway since a time", "200",
            ref(schemas.Renewals), errors=(400, 401, 403),
            key="library", params=[{"name": "since", "in": "query", "required": False,
                                    "schema": STR}])},
        "/api/v1/library/overdue-run": {"post": _op(
            "Run the overdue reminders now (once per `due` day across instances)", "200",
            ref(schemas.JobSummary), errors=(400, 401, 403), key="library",
            params=[{"name": "due", "in": "query", "required": False, "schema": STR}])},
        "/api/v1/announcements": {"post": _op(
            "Announce to units and roles (roles narrow units); answers at once, fan-out "
            "follows", "202", ref(schemas.AnnouncementQueued),
            errors=(400, 401, 403, 413), key="announce", body=ref(schemas.NewAnnouncement))},
        "/api/v1/announcements/{id}": {"get": _op(
            "Delivery counts: queued, sent, failed, acknowledged", "200",
            ref(schemas.AnnouncementStats), errors=(401, 403, 404), key="announce",
            params=[ID])},
        "/api/v1/announcements/{id}/cancel": {"post": _op(
            "Cancel a scheduled announcement", "200", ref(schemas.AnnouncementState),
            errors=(401, 403, 404, 409), key="announce", params=[ID])},
        "/api/v1/announcements/{id}/retract": {"post": _op(
            "Retract a published announcement; recipients are told", "200",
            ref(schemas.AnnouncementRetracted), errors=(401, 403, 404, 409), key="announce",
            params=[ID])},
        "/ack/{token}": {
            "get": _op("The acknowledgement page: a button, nothing acknowledged yet", "200",
                       STR, errors=(), content_type="text/html", params=[_path("token")]),
            "post": _op("Acknowledge the announcement", "200", STR, errors=(),
                        content_type="text/html", params=[_path("token")])},
        "/unsubscribe/{token}": {
            "get": _op("The unsubscribe page: a button, nothing turned off yet", "200", STR,
                       errors=(), content_type="text/html", params=[_path("token")]),
            "post": _op("RFC 8058 one-click unsubscribe: turns off the notice type the token "
                        "names, for its person on its channel; no sign-in", "200", STR,
                        errors=(), content_type="text/html", params=[_path("token")])},
        "/sprawy/{number}": {"get": _page(
            "The resident's case page: with `?code=` it checks the code, keeps a cookie and "
            "redirects to the bare address; without a session it asks for the code",
            (200, 303, 404, 429), params=[_path("number"), {"name": "code", "in": "query",
                                                            "required": False, "schema": STR},
                                          {"name": "lang", "in": "query", "required": False,
                                           "schema": {"type": "string", "enum": ["pl", "en"]}}])},
        "/sprawy/{number}/kod": {"post": _page(
            "The access-code form: redirects to the page with the code", (303, 400, 404),
            params=[_path("number")], form=_obj(["code"], code=STR))},
        "/sprawy/{number}/wiadomosc": {"post": _page(
            "Add a message (and an attachment) to one's own case; CSRF token required. 413: "
            "the text is added, the file not stored (over a case's or the store's limit); "
            "429: too many posts from this client (Retry-After)",
            (303, 400, 403, 404, 413, 429), params=[_path("number")],
            form=_obj(["csrf"], csrf=STR, message=STR), multipart=True)},
        "/telegram/webhook": {"post": _op(
            "Telegram updates in webhook mode (X-Telegram-Bot-Api-Secret-Token)", "200", None,
            errors=(400, 401, 404, 413), body={"type": "object"})},
        **{hook.path: {"post": _op(
            f"{hook.title} (Standard Webhooks signature)", "200", {"type": "object"},
            errors=(400, 401, 413), body={"type": "object"}, params=HOOK_HEADERS)}
           for hook in HOOKS},
    }
    paths.update(console_paths())
    if app is not None:
        paths.update(channel_callbacks(app))
    for path in ("/ack/{token}", "/unsubscribe/{token}"):
        for op in paths[path].values():
            op["responses"]["404"] = {"description": "invalid or expired link",
                                      "content": {"text/html": {"schema": STR}}}
    for path in paths:
        if path.startswith("/hooks/"):
            paths[path]["post"]["responses"].update(_errors(503))
    return {
        "openapi": "3.1.0",
        "info": {"title": "e-Milanówek gateway", "version": "1.0.0",
                 "description": "The town's e-services: cases, grades, library, announcements."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": models.schemas,
        },
    }


def console_paths() -> S:
    """The staff console (gateway/panel*.py): HTML pages behind a session cookie. Without
    one a page redirects to the sign-in form and a form answers 401; every form needs the
    session's CSRF token."""
    number, ident = _path("number"), _path("id")
    csrf = _obj(["csrf"], csrf=STR)
    text_form = _obj(["csrf"], csrf=STR, tekst=STR, status=STR, osoba=STR)
    page = (200, 303, 403, 404)
    form = (303, 400, 401, 403, 404, 409)
    query = [{"name": n, "in": "query", "required": False, "schema": STR}
             for n in ("lang", "szukaj", "status", "kanal", "wiek", "przydzial", "strona")]
    paths: S = {
        "/panel": {"get": _page("The console: the first section the person may use",
                                (200, 303), params=[])},
        "/panel/": {"get": _page("The console: the first section the person may use",
                                 (200, 303), params=[])},
        "/panel/wejscie": {
            "get": _page("Sign-in form (email); sets the browser cookie the link is bound to",
                         (200,), params=[{"name": "dalej", "in": "query", "required": False,
                                          "schema": STR}]),
            "post": _page("Send a one-time sign-in link by mail or the bot (same answer for "
                          "any address)", (200, 400, 403, 429), params=[],
                          form=_obj(["csrf", "email"], csrf=STR, email=STR, dalej=STR))},
        "/panel/wejscie/{token}": {
            "get": _page("The sign-in link: a button (a mail scanner's visit spends nothing)",
                         (200,), params=[_path("token")]),
            "post": _page("Spend the link in the browser that asked for it; starts a session",
                          (303, 403), params=[_path("token")], form=csrf)},
        "/panel/wyloguj": {"post": _page("Sign out", (303, 401, 403), params=[], form=csrf)},
        "/panel/wyloguj-wszedzie": {"post": _page("End every session of this person",
                                                  (303, 401, 403), params=[], form=csrf)},
        "/panel/sprawy": {"get": _page("The case queue: filters and full-text search",
                                       page, params=query)},
        "/panel/sprawy/{number}": {"get": _page("A case: the thread, attachments, forms",
                                                page, params=[number])},
        "/panel/sprawy/{number}/zalaczniki/{id}": {"get": {
            **_page("Download an attachment", (303, 403, 404), params=[number, ident]),
            "responses": {"200": {"description": "the file", "content": {
                "application/octet-stream": {"schema": STR}}},
                **_page("", (303, 403, 404), params=[])["responses"]}}},
        **{f"/panel/sprawy/{{number}}/{name}": {"post": _page(summary, form, params=[number],
                                                              form=text_form)}
           for name, summary in (("odpowiedz", "Reply to the resident"),
                                 ("notatka", "An internal note"),
                                 ("status", "Change the status (the resident is told)"),
                                 ("przydziel", "Assign the case"))},
        "/panel/audyt": {"get": _page("The audit trail (admins)", page, params=[
            {"name": n, "in": "query", "required": False, "schema": STR}
            for n in ("kto", "akcja", "obiekt", "zrodlo", "lang")])},
        "/panel/ogloszenia": {
            "get": _page("Announcements: compose and recent", page, params=[]),
            "post": _page("Send the previewed announcement", form, params=[],
                          form=_obj(["csrf", "tytul", "tresc"], csrf=STR, tytul=STR,
                                    tresc=STR))},
        "/panel/ogloszenia/podglad": {"post": _page(
            "Preview: how many it reaches, as Telegram and as mail", (200, 400, 401, 403),
            params=[], form=_obj(["csrf"], csrf=STR, tytul=STR, tresc=STR))},
        "/panel/ogloszenia/{id}": {"get": _page("An announcement's counts, refreshing",
                                                page, params=[ident])},
        "/panel/ogloszenia/{id}/anuluj": {"post": _page("Cancel a scheduled announcement",
                                                        form, params=[ident], form=csrf)},
        "/panel/ogloszenia/{id}/wycofaj": {"post": _page("Retract a published announcement",
                                                         form, params=[ident], form=csrf)},
        "/panel/biblioteka": {"get": _page("Library: last run, readers to phone, renewals",
                                           page, params=[])},
        "/panel/ludzie": {"get": _page("People: search", page, params=[
            {"name": "szukaj", "in": "query", "required": False, "schema": STR}])},
        "/panel/ludzie/{id}": {"get": _page("A person", page, params=[ident])},
        "/panel/ludzie/{id}/kod": {"post": _page("A link code as a QR code and a letter",
                                                 (200, 401, 403, 404), params=[ident],
                                                 form=csrf)},
        "/panel/ludzie/{id}/eksport": {"post": {
            **_page("RODO export", (401, 403, 404), params=[ident], form=csrf),
            "responses": {"200": {"description": "everything held", "content": _json(
                {"type": "object"})}, **_page("", (401, 403, 404), params=[])["responses"]}}},
        "/panel/ludzie/{id}/ustawienia": {"post": _page(
            "The person's first channel and SMS plain letters", form, params=[ident],
            form=_obj(["csrf"], csrf=STR, kanal=STR, bez_polskich=STR))},
        "/panel/ludzie/{id}/usun": {"post": _page(
            "RODO erasure (the person's number typed again)", form, params=[ident],
            form=_obj(["csrf", "potwierdzenie"], csrf=STR, potwierdzenie=STR))},
        "/panel/zdrowie": {"get": _page("Health at a glance", page, params=[])},
        "/panel/szkoly": {"get": _page(
            "The schools' figures (education office): SVG charts, tables", page, params=[
                {"name": n, "in": "query", "required": False, "schema": STR}
                for n in ("rok", "lang")])},
        "/panel/szkoly/{key}.csv": {"get": {
            **_page("One figure as CSV (cells of fewer than 5 pupils: <5)", (303, 403, 404),
                    params=[_path("key")]),
            "responses": {"200": {"description": "the figure", "content": {
                "text/csv": {"schema": STR}}}, **_page("", (303, 403, 404), params=[])["responses"]}}},
        "/panel/nieodczytane": {"get": _page("Mail not understood: the queue (case staff)",
                                             page, params=[
            {"name": n, "in": "query", "required": False, "schema": STR}
            for n in ("zrobione", "lang")])},
        "/panel/nieodczytane/{id}": {"get": _page("One unread mail and its actions", page,
                                                  params=[ident])},
        "/panel/nieodczytane/{id}/oryginal": {"get": {
            **_page("Download the original mail", (303, 403, 404), params=[ident]),
            "responses": {"200": {"description": "the mail as it arrived", "content": {
                "message/rfc822": {"schema": STR}}},
                **_page("", (303, 403, 404), params=[])["responses"]}}},
        "/panel/nieodczytane/{id}/sprawa": {"post": _page(
            "Open a case from unread mail (the sender is the requester)", form,
            params=[ident], form=_obj(["csrf", "temat", "tresc"], csrf=STR, temat=STR,
                                      tresc=STR))},
        "/panel/nieodczytane/{id}/zalatwione": {"post": _page(
            "Mark unread mail handled", form, params=[ident], form=csrf)},
        "/static/panel.css": {"get": {"summary": "The console's stylesheet", "security": [],
                                      "responses": {"200": {"description": "CSS", "content": {
                                          "text/css": {"schema": STR}}}}}},
    }
    return paths


def channel_callbacks(app: web.Application) -> S:
    """The registered channels' own callbacks (gateway/app.mount_callbacks), described
    from the routes themselves: each by its handler's docstring; they answer `OK` as
    plain text, and the gateway's errors otherwise."""
    signed = {hook.path for hook in HOOKS}
    paths: S = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not path.startswith("/hooks/") or path in signed or route.method == "HEAD":
            continue
        names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
        summary = (route.handler.__doc__ or "A channel's callback").strip().splitlines()[0]
        paths.setdefault(path, {})[route.method.lower()] = _op(
            summary, "200", STR, content_type="text/plain", errors=(400, 403, 404, 413, 429),
            params=[_path(name) for name in names])
    return paths


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document(request.app))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", serve)
