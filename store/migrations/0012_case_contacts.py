"""A case's requester on any channel (#19): the table `case_contact` (one address per case
and channel, looked up by channel and address) takes the place of the columns
`case.requester_email` and `case.requester_chat`, which knew two channels.

The rows are copied over (email from `requester_email`, Telegram from `requester_chat`),
then the two columns dropped. Not with Tortoise's own `RemoveField` on SQLite: its SQLite
editor removes a column by remaking the table (create `new__case`, copy, `DROP TABLE
"case"`, rename; tortoise/migrations/schema_editor/sqlite.py, `_remake_table`), and with
foreign keys on, which they always are here, `DROP TABLE` first deletes every row
(sqlite.org/lang_droptable.html: "an implicit DELETE FROM"), so ON DELETE CASCADE
would take every case's history and attachments with it, and the table's own indexes
would be gone too. SQLite drops a column in place since 3.35 (`ALTER TABLE … DROP
COLUMN`, sqlite.org/lang_altertable.html) once no index covers it, which is what
`DropColumn` does there; PostgreSQL's `DROP COLUMN … CASCADE` (Tortoise's own) takes
the column's index with it.
"""

from typing import Any

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

_COPY = (
    'INSERT INTO case_contact (case_id, channel, address) '
    'SELECT number, \'email\', requester_email FROM "case" WHERE requester_email IS NOT NULL '
    "AND requester_email <> ''",
    'INSERT INTO case_contact (case_id, channel, address) '
    'SELECT number, \'telegram\', requester_chat FROM "case" WHERE requester_chat IS NOT NULL '
    "AND requester_chat <> ''",
)


async def copy_requesters(apps: Any, editor: Any) -> None:
    """Each case's requester columns become its contacts (the same SQL on both engines)."""
    for statement in _COPY:
        await editor.client.execute_script(statement)


class DropColumn(ops.RemoveField):
    """`RemoveField` that keeps the table: on SQLite, the indexes covering the column are
    dropped and then the column alone (see the module's docstring for why)."""

    async def database_forward(self, app_label: str, old_state: Any, new_state: Any,
                               state_editor: Any = None) -> None:
        from store.sql import on_postgres

        if not state_editor or on_postgres(state_editor.client):
            await super().database_forward(app_label, old_state, new_state, state_editor)
            return
        db = state_editor.client
        table = old_state.apps.get_model(f"{app_label}.{self.model_name}")._meta.db_table
        _, indexes = await db.execute_query(f'PRAGMA index_list("{table}")')
        for index in indexes:
            _, columns = await db.execute_query(f'PRAGMA index_info("{index["name"]}")')
            if any(column["name"] == self.name for column in columns):
                await db.execute_script(f'DROP INDEX "{index["name"]}"')
        await db.execute_script(f'ALTER TABLE "{table}" DROP COLUMN "{self.name}"')


class Migration(migrations.Migration):
    dependencies = [('models', '0011_sms')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CaseContact',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case', fields.ForeignKeyField('models.Case', source_field='case_id', db_constraint=True, to_field='number', related_name='contacts', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharField(max_length=16)),
                ('address', fields.CharField(max_length=320)),
            ],
            options={'table': 'case_contact', 'app': 'models', 'unique_together': (('case_id', 'channel'),), 'indexes': [Index(fields=['channel', 'address'])], 'pk_attr': 'id', 'table_description': "Where a case's requester is reached on one channel"},
            bases=['Model'],
        ),
        ops.RunPython(copy_requesters),
        DropColumn(model_name='Case', name='requester_chat'),
        DropColumn(model_name='Case', name='requester_email'),
    ]
