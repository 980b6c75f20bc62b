"""SMS (#19): numbers that said STOP, what a paid channel spent per month, phones claimed
by a one-time code, when an outbox row was reported delivered, and a person's
choice of text without Polish letters."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0010_mail_bounces')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OptOut',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.CharField(max_length=16)),
                ('address', fields.CharField(max_length=320)),
                ('since', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'opt_out', 'app': 'models', 'unique_together': (('channel', 'address'),), 'pk_attr': 'id', 'table_description': 'An address that asked for nothing more on its channel'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChannelSpend',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('channel', fields.CharField(max_length=16)),
                ('month', fields.CharField(max_length=7)),
                ('units', fields.IntField(default=0)),
                ('exhausted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'channel_spend', 'app': 'models', 'unique_together': (('channel', 'month'),), 'pk_attr': 'id', 'table_description': 'What a paid channel has spent in one month'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AddressClaim',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person_id', fields.IntField(db_index=True)),
                ('channel', fields.CharField(max_length=16)),
                ('address', fields.CharField(max_length=320)),
                ('code_hash', fields.CharField(max_length=64)),
                ('attempts', fields.SmallIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'address_claim', 'app': 'models', 'pk_attr': 'id', 'table_description': "A person's claim to an address, proven by a one-time code"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Person',
            name='plain_letters',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Outbox',
            name='delivered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
