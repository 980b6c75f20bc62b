"""The staff console (#13): sign-in links, sessions, the audit trail, case assignment, and
the full-text index of cases (store/search.py), which the ORM cannot describe."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


async def search_and_append_only_audit(apps, editor):  # type: ignore[no-untyped-def]
    from store.search import create_schema
    from store.sql import on_postgres

    db = editor.client
    await create_schema(db)
    if on_postgres(db):
        await db.execute_script(
            "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$ LANGUAGE plpgsql")
        await db.execute_script(
            "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only()")
    else:
        for event in ("UPDATE", "DELETE"):
            await db.execute_script(
                f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit "
                "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END")


class Migration(migrations.Migration):
    dependencies = [('models', '0004_school')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Case',
            name='assignee_id',
            field=fields.IntField(null=True, db_index=True, description='the clerk the case is assigned to, if any'),
        ),
        ops.AddField(
            model_name='CaseEvent',
            name='message_id',
            field=fields.CharField(null=True, max_length=255),
        ),
        ops.AddField(
            model_name='CaseEvent',
            name='author_id',
            field=fields.IntField(null=True),
        ),
        ops.AddIndex(
            model_name='Case',
            index=Index(fields=['status', 'updated_at']),
        ),
        ops.AddIndex(
            model_name='Case',
            index=Index(fields=['updated_at']),
        ),
        ops.AddIndex(
            model_name='CaseEvent',
            index=Index(fields=['case_id', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Attachment',
            index=Index(fields=['case_id']),
        ),
        ops.CreateModel(
            name='SignInLink',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('person_id', fields.IntField()),
                ('browser_hash', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_in_link', 'app': 'models', 'pk_attr': 'token_hash'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffSession',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('person_id', fields.IntField(db_index=True)),
                ('csrf', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'staff_session', 'app': 'models', 'pk_attr': 'token_hash'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(max_length=200)),
                ('person_id', fields.IntField(null=True, db_index=True)),
                ('source', fields.CharField(max_length=16)),
                ('action', fields.CharField(max_length=64)),
                ('object', fields.CharField(max_length=100, db_index=True)),
                ('address', fields.CharField(default='', max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'audit', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(search_and_append_only_audit),
    ]
