"""Mail not understood (#18, fault 1): unread mail waits for a clerk in the console, with
what could be read of it and who handled it (a status of its own on `raw_inbound`)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0005_console')]

    initial = False

    operations = [
        ops.AddField(
            model_name='RawInbound',
            name='summary',
            field=fields.JSONField(null=True),
        ),
        ops.AddField(
            model_name='RawInbound',
            name='handled_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='RawInbound',
            name='handled_by_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='RawInbound',
            name='case_number',
            field=fields.CharField(null=True, max_length=20),
        ),
    ]
