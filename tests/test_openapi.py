"""Issue #11: the OpenAPI 3.1 document describes every endpoint, and only real ones."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

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
