"""The SMS channel in a test gateway, and texts sent to it through the SMSAPI double's
callbacks: shared by the SMS tests (fixtures `smsapi` and `sms_gw` are in conftest)."""

from __future__ import annotations

from typing import Any

from gateway.app import create_app
from gateway.config import Settings
from store.clock import FrozenClock
from tests.conftest import Gateway
from tests.doubles.botapi import BotApiDouble
from tests.doubles.smsapi import TOKEN, SmsApiDouble

PHONE = "+48500100200"
OTHER = "+48600300400"
SECRET = "sms-callback-secret-0123456789"


async def sms_gateway(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                      clock: FrozenClock, smsapi: SmsApiDouble, **more: Any) -> Gateway:
    """A gateway with the SMS channel on, talking to `smsapi`, its callbacks secret set."""
    with_sms = settings.model_copy(update={
        "sms_token": TOKEN, "sms_api_url": smsapi.url, "sms_sender": "Milanowek",
        "sms_rate": 1000.0, "sms_callback_secret": SECRET, **more})
    gw = Gateway(await aiohttp_client(create_app(with_sms, clock=clock, run_workers=False)),
                 with_sms, botapi, clock)
    smsapi.callback = str(gw.client.make_url(f"/hooks/sms/smsapi/{SECRET}"))
    return gw


async def say(gw: Gateway, smsapi: SmsApiDouble, text: str, sender: str = PHONE,
              **kw: Any) -> list[str]:
    """An incoming SMS through the provider's callback; the SMS answers it got."""
    before = len(smsapi.to(sender))
    assert await smsapi.incoming(sender, text, **kw) == (200, "OK")
    await gw.drain()
    return [sms.message for sms in smsapi.to(sender)[before:]]
