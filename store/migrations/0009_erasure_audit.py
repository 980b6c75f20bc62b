"""Issue #18, fault 12: the audit trail refuses being rewritten by the two statements
that went around 0005's UPDATE and DELETE triggers.

SQLite's `INSERT OR REPLACE` (and `REPLACE`) deletes the row in its way without firing
DELETE triggers unless `recursive_triggers` is on (sqlite.org/lang_conflict.html), a
per-connection setting any other client leaves off. A BEFORE INSERT trigger refusing an
id that is already there holds for every connection: it runs before the conflict is
resolved. PostgreSQL's `TRUNCATE` fires no row triggers; a statement-level BEFORE
TRUNCATE trigger refuses it (postgresql.org/docs/current/sql-createtrigger.html).
No table changes: fault 4 (erasure) needed none."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def audit_refuses_replace_and_truncate(apps, editor):  # type: ignore[no-untyped-def]
    from store.sql import on_postgres

    db = editor.client
    if on_postgres(db):
        # audit_append_only() is 0005's function: it raises whatever fired it
        await db.execute_script(
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()")
    else:
        await db.execute_script(
            "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit "
            "WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id) "
            "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END")


class Migration(migrations.Migration):
    dependencies = [('models', '0008_attachment_quota')]

    initial = False

    operations = [
        ops.RunPython(audit_refuses_replace_and_truncate),
    ]
