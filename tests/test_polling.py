"""Polling transport: getUpdates in our loop, stored before the offset moves on."""

from __future__ import annotations

from gateway.app import create_app
from store.clock import Clock
from store.models import RawInbound
from tests.doubles.botapi import message_update


async def test_polling_answers_and_stores_each_update_once(botapi, settings, aiohttp_client) -> None:
    # botapi first: fixtures tear down in reverse, so the app stops before the double
    settings = settings.model_copy(update={"telegram_mode": "polling"})
    botapi.updates.append(message_update(3001, "/pomoc", update_id=1))
    botapi.updates.append(message_update(3002, "/start", update_id=2))
    app = create_app(settings, clock=Clock(), run_workers=True)
    await aiohttp_client(app)
    await botapi.wait_for(2, timeout=15)
    assert "/sprawa" in botapi.texts_to(3001)[0]
    assert "Dzień dobry" in botapi.texts_to(3002)[0]
    assert await RawInbound.filter(channel="telegram").count() == 2
