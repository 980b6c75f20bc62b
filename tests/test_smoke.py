from tests.conftest import Gateway


async def test_healthz(gw: Gateway) -> None:
    resp = await gw.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
