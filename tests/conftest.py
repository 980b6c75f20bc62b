"""Shared fixtures: the real gateway app over a real database, the Bot API double, SMTP.

`EMIL_TEST_DATABASE_URL` points the suite at PostgreSQL (`.ci/run` sets it for the second
pass); otherwise every test gets its own SQLite file. Network is loopback only.
"""

from __future__ import annotations

import base64
import email
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient, TestServer
from standardwebhooks.webhooks import Webhook

from gateway.app import create_app
from gateway.config import Settings
from gateway.keys import DISPATCHER, INBOX, SERVICES, SIGN_IN, SMTP_PORT
from store.clock import FrozenClock
from tests.doubles.botapi import BotApiDouble, message_update
from tests.doubles.smsapi import SmsApiDouble
from tests.doubles.smtp_relay import Sink, start_sink

PG_URL = os.environ.get("EMIL_TEST_DATABASE_URL")
ADMIN = "admin-test-token"
WEBHOOK_SECRET = "tg-secret-for-tests"
REGISTER_SECRET = "whsec_" + base64.b64encode(b"register-secret-0123456789abcdef").decode()
LIBRARY_SECRET = "whsec_" + base64.b64encode(b"library-secret-0123456789abcdefg").decode()
START = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # 10:00 in Milanówek


async def reset_postgres(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


#: one template per test database, so that suites on different databases can run side by side
TEMPLATE_DB = (PG_URL.rsplit("/", 1)[1] if PG_URL else "emil_test") + "_template"


def _postgres_admin_url(url: str, database: str) -> str:
    return url.replace("postgres://", "postgresql://", 1).rsplit("/", 1)[0] + "/" + database


async def _migrated_once(url: str) -> None:
    from store.db import Store

    store = Store(url)
    await store.open(migrate=True)
    await store.close()


@pytest.fixture(autouse=True)
async def _no_store_left_open() -> AsyncIterator[None]:
    """A test that fails or times out between opening a store and closing it leaves
    Tortoise's global context set, and every later test then fails to open its own
    ("Global context fallback is already enabled"): one timeout became 25 failures in CI.
    Whatever a test left open is closed here, so a failure stays that test's own."""
    yield
    from tortoise import context as tortoise_context

    left = tortoise_context._global_context
    if left is not None:
        try:
            await left.close_connections()
        finally:
            tortoise_context._global_context = None


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The schema migrated once per session, to copy for every test: migrating a fresh
    database took ~1 s a test (Tortoise builds the state of every migration), reopening
    a migrated copy ~30 ms. SQLite: a file; PostgreSQL: a template database."""
    import asyncio

    if PG_URL:
        import asyncpg

        async def build() -> None:
            await reset_postgres(PG_URL)
            await _migrated_once(PG_URL)
            conn = await asyncpg.connect(_postgres_admin_url(PG_URL, "postgres"))
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
                source = PG_URL.rsplit("/", 1)[1]
                await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}" TEMPLATE "{source}"')
            finally:
                await conn.close()

        asyncio.run(build())
        return TEMPLATE_DB
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrated_once(f"sqlite://{path}"))
    return str(path)


@pytest.fixture
async def database_url(tmp_path: Path, migrated_template: str) -> str:
    """A migrated database of the test's own (a copy of the session's template)."""
    if PG_URL:
        import asyncpg

        source = PG_URL.rsplit("/", 1)[1]
        conn = await asyncpg.connect(_postgres_admin_url(PG_URL, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{source}" TEMPLATE "{migrated_template}"')
        finally:
            await conn.close()
        return PG_URL
    shutil.copyfile(migrated_template, tmp_path / "test.db")
    return f"sqlite://{tmp_path}/test.db"


@pytest.fixture
async def empty_database_url(tmp_path: Path) -> str:
    """A database with no schema at all (tests of migrating itself)."""
    if PG_URL:
        await reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite://{tmp_path}/empty.db"


@pytest.fixture
async def botapi():
    double = BotApiDouble()
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    double.url = str(server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
    yield double
    await server.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(database_url: str, botapi: BotApiDouble, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        telegram_token="123456:TEST-TOKEN",
        telegram_api_url=botapi.url,  # type: ignore[attr-defined]
        telegram_mode="webhook",
        telegram_webhook_secret=WEBHOOK_SECRET,
        telegram_rate=1000,
        telegram_chat_interval=0,
        sms_number_interval=0,  # spacing has its own test (tests/test_sms_money.py)
        smtp_port=0,
        sent_mail_dir=str(tmp_path / "sent-mail"),
        admin_token=ADMIN,
        signing_secret="signing-secret-for-tests",
        hook_secret_register=REGISTER_SECRET,
        hook_secret_library=LIBRARY_SECRET,
        outbox_poll_seconds=0.05,
        instance_name="test",
    )


class Gateway:
    """The app under test plus the ways people reach it."""

    def __init__(self, client: TestClient, settings: Settings, botapi: BotApiDouble,
                 clock: FrozenClock) -> None:
        self.client = client
        self.app = client.app
        self.settings = settings
        self.botapi = botapi
        self.clock = clock
        self.services = self.app[SERVICES]

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    async def drain(self) -> None:
        """Handle everything stored and send everything due, until nothing moves."""
        for _ in range(50):
            moved = await self.app[INBOX].drain()
            moved += await self.app[SIGN_IN].drain()
            moved += await self.app[DISPATCHER].drain()
            if not moved:
                return

    async def tg(self, chat_id: int, text: str, **kw: Any) -> list[str]:
        """Send a Telegram message through the webhook; returns the bot's new replies."""
        before = len(self.botapi.texts_to(chat_id))
        await self.update(message_update(chat_id, text, **kw))
        return self.botapi.texts_to(chat_id)[before:]

    async def update(self, data: dict[str, Any]) -> None:
        resp = await self.client.post("/telegram/webhook", json=data,
                                      headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
        assert resp.status == 200, await resp.text()
        await self.drain()

    async def smtp(self, raw: bytes | EmailMessage, *, to: str = "sprawy", sender: str = "jan@example.pl"
                   ) -> tuple[int, str]:
        """Deliver over a real SMTP connection; returns the server's DATA answer."""
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.app[SMTP_PORT], timeout=10)
        await smtp.connect()
        try:
            await smtp.ehlo()
            await smtp.mail(sender)
            await smtp.rcpt(f"{to}@{self.settings.mail_domain}")
            response = await smtp.data(data)
        finally:
            await smtp.quit()
        return response.code, response.message

    async def mail(self, raw: bytes | EmailMessage, **kw: Any) -> list[EmailMessage]:
        """Deliver mail, handle it, and return the new outgoing mail."""
        before = len(self.sent_mail())
        code, message = await self.smtp(raw, **kw)
        assert code == 250, message
        await self.drain()
        return self.sent_mail()[before:]

    def sent_mail(self) -> list[EmailMessage]:
        folder = Path(self.settings.sent_mail_dir)
        if not folder.exists():
            return []
        return [email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
                for p in sorted(folder.glob("*.eml"))]

    async def person(self, name: str = "Jan Kowalski", roles: list[str] | None = None,
                     **fields: Any) -> int:
        resp = await self.client.post("/api/v1/people", headers=self.admin,
                                      json={"name": name, "roles": roles or ["citizen"], **fields})
        assert resp.status == 201, await resp.text()
        return (await resp.json())["id"]

    async def linked(self, chat_id: int, name: str = "Jan Kowalski", roles: list[str] | None = None,
                     **fields: Any) -> int:
        """A person whose Telegram chat is linked through a real `/start CODE`."""
        person_id = await self.person(name, roles, **fields)
        resp = await self.client.post(f"/api/v1/people/{person_id}/link-codes", headers=self.admin)
        code = (await resp.json())["code"]
        replies = await self.tg(chat_id, f"/start {code}")
        assert "połączony" in replies[-1], replies
        return person_id

    def signed(self, body: bytes, secret: str, webhook_id: str, when: datetime | None = None
               ) -> dict[str, str]:
        stamp = when or datetime.now(timezone.utc)
        signature = Webhook(secret).sign(webhook_id, stamp, body.decode())
        return {"webhook-id": webhook_id, "webhook-timestamp": str(int(stamp.timestamp())),
                "webhook-signature": signature, "Content-Type": "application/json"}


@pytest.fixture
async def gw(aiohttp_client, settings: Settings, botapi: BotApiDouble, clock: FrozenClock
             ) -> Gateway:
    app = create_app(settings, clock=clock, run_workers=False)
    client = await aiohttp_client(app)
    return Gateway(client, settings, botapi, clock)


def make_mail(subject: str, body: str, *, sender: str = "Jan Kowalski <jan@example.pl>",
              to: str = "sprawy@milanowek.example", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="example.pl")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


@pytest.fixture
async def relay() -> AsyncIterator[tuple[Sink, int]]:
    """An SMTP relay double on loopback (tests/doubles/smtp_relay.py) and its port."""
    sink, server, port = await start_sink()
    yield sink, port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def smsapi() -> AsyncIterator[SmsApiDouble]:
    """The SMSAPI.pl double (tests/doubles/smsapi.py) on loopback, its `url` set."""
    from aiohttp.test_utils import TestServer

    double = SmsApiDouble()
    server = TestServer(double.app(), host="127.0.0.1")
    await server.start_server()
    double.url = str(server.make_url("")).rstrip("/")
    yield double
    await server.close()


@pytest.fixture
async def sms_gw(aiohttp_client: Any, settings: Settings, botapi: BotApiDouble,
                 clock: FrozenClock, smsapi: SmsApiDouble, relay: tuple[Sink, int]) -> Gateway:
    """A gateway with SMS and its callbacks on (tests/sms.py), mail through the relay double."""
    from tests.sms import sms_gateway

    return await sms_gateway(aiohttp_client, settings, botapi, clock, smsapi,
                             smtp_relay=f"127.0.0.1:{relay[1]}")
