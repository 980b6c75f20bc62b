"""Issue #11: the OpenAPI 3.1 document describes every endpoint, and only real ones.
Issue #19: its JSON bodies are the models the API validates with (gateway/schemas.py)."""

from __future__ import annotations

import re
from dataclasses import replace

from openapi_spec_validator import validate
from pydantic import StringConstraints

from gateway import schemas
from handlers.limits import column_limit
from store.models import ROLES, Case, Person
from tests.conftest import Gateway


async def test_every_route_is_described_and_every_description_is_a_route(gw: Gateway) -> None:
    resp = await gw.client.get("/api/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    validate(document)  # a valid OpenAPI 3.1 document
    described = {(method.upper(), path) for path, ops in document["paths"].items()
                 for method in ops}
    served = set()
    for route in gw.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or path is None:
            continue
        served.add((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    assert served == described


async def test_a_limit_changed_in_a_model_shows_in_the_document_and_the_answer(
        gw: Gateway) -> None:
    """Issue #19: a request's limits are written once, in its model (gateway/schemas.py),
    which the API validates with and the document is built from — no copy to forget."""
    subject = schemas.NewCase.model_fields["subject"]
    kept = subject.metadata
    subject.metadata = [replace(m, max_length=20) if isinstance(m, StringConstraints) else m
                        for m in kept]
    schemas.NewCase.model_rebuild(force=True)
    try:
        document = await (await gw.client.get("/api/openapi.json")).json()
        validate(document)
        assert document["components"]["schemas"]["NewCase"]["properties"]["subject"][
            "maxLength"] == 20
        resp = await gw.client.post("/api/v1/cases", json={"subject": "s" * 21, "body": "b"})
        assert resp.status == 400
        assert (await resp.json())["error"] == {
            "code": "too_long", "message": "'subject' is longer than 20 characters",
            "field": "subject"}
        resp = await gw.client.post("/api/v1/cases", json={"subject": "s" * 20, "body": "b"})
        assert resp.status == 201
    finally:
        subject.metadata = kept
        schemas.NewCase.model_rebuild(force=True)
    document = await (await gw.client.get("/api/openapi.json")).json()
    assert document["components"]["schemas"]["NewCase"]["properties"]["subject"][
        "maxLength"] == column_limit(Case, "subject") == 300


async def test_the_document_states_the_limits_the_api_keeps(gw: Gateway) -> None:
    """What the hand-written document left out and the code refused all along (a person's
    name of 201 characters, a role that is none, a guardian id past the database): the
    document now says it, and the API's 400 names the field as the document does."""
    document = await (await gw.client.get("/api/openapi.json")).json()
    components = document["components"]["schemas"]
    person = components["NewPerson"]["properties"]
    assert person["name"]["maxLength"] == column_limit(Person, "name")
    assert person["roles"]["items"]["enum"] == list(ROLES)
    assert components["NewStudent"]["properties"]["guardians"]["items"]["maximum"] == 2**31 - 1
    body = document["paths"]["/api/v1/people"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/NewPerson"}
    for json, field in (({"name": "n" * 201, "roles": ["citizen"]}, "name"),
                        ({"name": "   ", "roles": ["citizen"]}, "name"),
                        ({"name": "N", "roles": ["citizen"], "units": ["u"] * 51}, "units"),
                        ({"name": "N", "roles": ["citizen"], "language": "de"}, "language"),
                        ({"name": "N", "roles": "citizen"}, "roles")):
        resp = await gw.client.post("/api/v1/people", json=json, headers=gw.admin)
        assert resp.status == 400, json
        assert (await resp.json())["error"]["field"] == field, json
    # null is a field left out, as before: required, it is missing
    resp = await gw.client.post("/api/v1/people", json={"name": None, "roles": ["citizen"]},
                                headers=gw.admin)
    assert (await resp.json())["error"] == {"code": "missing_field",
                                            "message": "'name' is required", "field": "name"}
    resp = await gw.client.post("/api/v1/people", headers=gw.admin, json={
        "name": "  Ola  ", "roles": ["citizen"], "email": None, "units": None})
    assert resp.status == 201
    assert (await Person.get(id=(await resp.json())["id"])).name == "Ola"
    # a nested field is named with its path, and true is not a number
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "T", "body": "B", "audience": {"units": ["urzad"]}, "author_id": True,
        "attachment": {"filename": "a.pdf"}})
    assert (await resp.json())["error"]["field"] == "author_id"
    resp = await gw.client.post("/api/v1/announcements", headers=gw.admin, json={
        "title": "T", "body": "B", "audience": {"units": ["urzad"]},
        "attachment": {"filename": "a.pdf"}})
    assert (await resp.json())["error"] == {
        "code": "missing_field", "message": "'attachment.data' is required",
        "field": "attachment.data"}


async def test_a_student_id_is_a_text_or_a_number_and_true_is_neither(gw: Gateway) -> None:
    """`true` passed as a number (bool is an int in Python) and became the student "True";
    the model's strict union refuses it and says what the field takes."""
    resp = await gw.client.post("/api/v1/students", headers=gw.admin,
                                json={"id": True, "name": "Ola"})
    assert resp.status == 400
    assert (await resp.json())["error"] == {
        "code": "invalid_field", "message": "'id' must be a whole number or a string",
        "field": "id"}
    resp = await gw.client.post("/api/v1/students", headers=gw.admin,
                                json={"id": "  ", "name": "Ola"})
    assert (await resp.json())["error"]["message"] == "'id' must not be empty"
    for student_id in (" S-7 ", 7):
        resp = await gw.client.post("/api/v1/students", headers=gw.admin,
                                    json={"id": student_id, "name": "Ola"})
        assert (resp.status, (await resp.json())["id"]) == (201, str(student_id).strip())


async def test_plain_letters_is_a_preference_of_the_api_too(gw: Gateway) -> None:
    """'bez polskich znaków' (handlers/preferences.py) was a rule the API's PATCH never
    reached: the body was read field by field and that field was not among them. One line
    in the model gives the API the field and the document its description."""
    document = await (await gw.client.get("/api/openapi.json")).json()
    assert document["components"]["schemas"]["Preferences"]["properties"][
        "plain_letters"] == {"type": "boolean"}
    person = await gw.person("Halina")
    resp = await gw.client.patch(f"/api/v1/people/{person}", headers=gw.admin,
                                 json={"plain_letters": True})
    assert (resp.status, await resp.json()) == (200, {"id": person, "plain_letters": True})
    assert (await Person.get(id=person)).plain_letters is True
    resp = await gw.client.patch(f"/api/v1/people/{person}", headers=gw.admin,
                                 json={"plain_letters": "tak"})
    assert (await resp.json())["error"] == {
        "code": "invalid_field", "message": "'plain_letters' must be true or false",
        "field": "plain_letters"}
