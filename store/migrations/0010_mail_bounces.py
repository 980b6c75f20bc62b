"""Bounces of our own mail (#19): an email identity whose mail bounces is marked failing,
with why and since when, and the recent soft bounces that add up to a hard one."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0009_erasure_audit')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Identity',
            name='failing_since',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Identity',
            name='failing_reason',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='Identity',
            name='soft_bounces',
            field=fields.JSONField(null=True),
        ),
    ]
