from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_leadership')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotentRequest',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('response', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotent_request', 'app': 'models', 'pk_attr': 'key', 'table_description': 'The answer to a request sent with an `Idempotency-Key`: the same key within 24 h'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SentMail',
            fields=[
                ('message_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('recipient', fields.CharField(max_length=320)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sent_mail', 'app': 'models', 'pk_attr': 'message_id', 'table_description': 'Every Message-ID we sent, and to whom: a reply threaded to one of them proves the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StoredSecret',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('value', fields.CharField(max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stored_secret', 'app': 'models', 'pk_attr': 'name', 'table_description': 'A secret the gateway generated once and keeps, so that every process and instance'},
            bases=['Model'],
        ),
    ]
