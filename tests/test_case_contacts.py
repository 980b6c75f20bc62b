"""Issue #19: a case's requester on any channel (case_contact, migration 0012)."""

from __future__ import annotations

from typing import Any

from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from handlers import cases
from handlers.cases import contacts_of
from store.clock import FrozenClock
from store.db import APP_LABEL, Store, tortoise_config
from store.models import Case, CaseContact, CaseEvent
from store.sql import on_postgres, sql
from tests.conftest import Gateway, make_mail
from tests.panel import sign_in, staff_member


async def test_a_case_keeps_each_channel_its_requester_used(gw: Gateway) -> None:
    """Opened by mail, followed up from Telegram by the same (linked) person: both are
    the case's contacts, the clerk's reply goes by the channel they last used, and the
    console shows both, with the channels' names."""
    person_id = await gw.linked(4401, "Jan Kowalski", email="jan@example.pl")
    await gw.mail(make_mail("Zalana piwnica", "Woda w piwnicy bloku przy Spacerowej 3."),
                  sender="jan@example.pl")
    case = await Case.get()
    assert case.person_id is None  # the mail proved nobody
    assert await contacts_of(case) == {("email", "jan@example.pl")}
    # Telegram proves the chat; the linked person holds the mail's address: theirs
    await gw.tg(4401, f"/sprawa {case.number}")
    await gw.tg(4401, "Woda już opadła.")
    assert await contacts_of(case) == {("email", "jan@example.pl"), ("telegram", "4401")}
    targets, _ = await cases.requester_targets(gw.services, await Case.get(number=case.number))
    assert targets[0] == ("telegram", "4401")  # the channel they last used, first
    assert person_id

    await staff_member(gw)
    await sign_in(gw, "urzedniczka@milanowek.example")
    page = await (await gw.client.get(f"/panel/sprawy/{case.number}")).text()
    assert "<dt>e-mail</dt><dd><bdi>jan@example.pl</bdi></dd>" in page
    assert "<dt>Telegram</dt><dd><bdi>4401</bdi></dd>" in page


# --- migration 0012 ----------------------------------------------------------------------

_OLD_CASE = ('INSERT INTO "case" (number, subject, body, status, access_code_hash, '
             "requester_email, requester_chat, origin_channel, last_channel, created_at, "
             "updated_at) VALUES (?, ?, ?, 'received', 'x', ?, ?, ?, ?, ?, ?)")
_OLD_EVENT = ("INSERT INTO case_event (case_id, kind, text, public, channel, created_at) "
              "VALUES (?, 'created', '', ?, ?, ?)")


async def _case_indexes(db: Any) -> set[str]:
    if on_postgres(db):
        rows = await db.execute_query_dict(
            "SELECT indexdef AS d FROM pg_indexes WHERE tablename = 'case'")
        return {row["d"].split(" USING ", 1)[1] for row in rows}
    rows = await db.execute_query_dict('PRAGMA index_list("case")')
    found = set()
    for row in rows:
        columns = await db.execute_query_dict(f'PRAGMA index_info("{row["name"]}")')
        found.add(",".join(c["name"] for c in columns))
    return found


async def test_migration_0012_copies_the_requesters_and_keeps_every_case_and_its_history(
        empty_database_url: str, clock: FrozenClock) -> None:
    """The columns go, their contents become contacts, and nothing else moves: the cases'
    history (which cascades from the case row) and the case table's indexes survive.
    Tortoise's own RemoveField remakes a SQLite table with DROP TABLE, which with foreign
    keys on deletes every case_event and attachment by cascade."""
    store = Store(empty_database_url)
    await store.open(migrate=False)
    try:
        db = get_connection("default")
        executor = MigrationExecutor(db, {APP_LABEL: tortoise_config("")["apps"][APP_LABEL]})
        await executor.migrate([MigrationTarget(APP_LABEL, "0011_sms")])
        now = clock.now()
        for number, email, chat, channel in (
                ("UM-2026-000001", "anna@example.pl", None, "email"),
                ("UM-2026-000002", None, "4401", "telegram"),
                ("UM-2026-000003", "jan@example.pl", "4402", "email"),
                ("UM-2026-000004", None, None, "api")):
            await db.execute_query(sql(db, _OLD_CASE), [number, "Temat", "Treść", email, chat,
                                                        channel, channel, now, now])
            await db.execute_query(sql(db, _OLD_EVENT), [number, True, channel, now])
        before = await _case_indexes(db)

        await store.migrate()

        contacts = set(await CaseContact.all().values_list("case_id", "channel", "address"))
        assert contacts == {("UM-2026-000001", "email", "anna@example.pl"),
                            ("UM-2026-000002", "telegram", "4401"),
                            ("UM-2026-000003", "email", "jan@example.pl"),
                            ("UM-2026-000003", "telegram", "4402")}
        assert await Case.all().count() == 4
        assert await CaseEvent.all().count() == 4  # the history survived the column drop
        after = await _case_indexes(db)
        assert {i for i in before if "requester" not in i} == after
        assert not any("requester" in i for i in after)
        columns = (await db.execute_query_dict(
            "SELECT column_name AS name FROM information_schema.columns "
            "WHERE table_name = 'case'") if on_postgres(db)
            else await db.execute_query_dict('PRAGMA table_info("case")'))
        assert not {c["name"] for c in columns} & {"requester_email", "requester_chat"}
    finally:
        await store.close()
